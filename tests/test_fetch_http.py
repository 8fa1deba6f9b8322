"""The offline world's packages come straight over HTTP(S): no apt-get, npm or dpkg-deb needed.

A local HTTP server (127.0.0.1, a thread) plays the Debian mirror and the npm registry; the
packages are built here (a tiny ``ar`` writer for the .deb), so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import oodbench.download as core_download
import oodbench.labels.wordnet as wordnet
from oodbench.download import Package, download, unpack
from oodbench.errors import MissingDataError
from oodbench_mini.fetch import PACKAGES


# -- building packages -------------------------------------------------------------------------
def _tar(files: dict[str, bytes], mode: str, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    """A common-format ``ar`` archive, as dpkg-deb writes a .deb."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += (f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode() + b"`\n")
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


WORDNET_FILES = {
    "./usr/share/wordnet/data.noun": b"  licence header\n",
    "./usr/share/wordnet/data.adj": b"  licence header\n",
    "./usr/share/doc/wordnet-base/copyright": b"Princeton WordNet licence (odd length)",
}


def _deb(files: dict[str, bytes], compression: str = "xz",
         links: dict[str, str] | None = None) -> bytes:
    data = _tar(files, f"w:{compression}", links)
    return _ar([("debian-binary", b"2.0\n"),
                ("control.tar.xz", _tar({"./control": b"Package: x\n"}, "w:xz")),
                (f"data.tar.{compression}", data)])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the local mirror --------------------------------------------------------------------------
class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support (what a resumed download sends)."""

    requests: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        type(self).requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        wanted = self.headers.get("Range")
        if not wanted or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A served folder; OODBENCH_DEBIAN_MIRROR / OODBENCH_NPM_REGISTRY point into it, PATH
    holds no apt-get, npm or dpkg-deb, and the data dir is this test's own (never the shared
    one, whose WordNet other tests read)."""
    monkeypatch.setenv("OODBENCH_DATA", str(tmp_path / "data"))
    root = tmp_path / "mirror"
    root.mkdir()
    _RangeHandler.requests = []
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("OODBENCH_DEBIAN_MIRROR", f"{base}/debian")
    monkeypatch.setenv("OODBENCH_NPM_REGISTRY", f"{base}/npm")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("apt-get") is None and shutil.which("npm") is None
    assert shutil.which("dpkg-deb") is None
    yield root
    server.shutdown()
    server.server_close()


def _publish(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# -- URLs --------------------------------------------------------------------------------------
def test_urls_follow_the_debian_pool_and_npm_registry_layouts(monkeypatch) -> None:
    monkeypatch.delenv("OODBENCH_DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("OODBENCH_NPM_REGISTRY", raising=False)
    wn = Package(wordnet.WORDNET_PACKAGE[0], "apt", *wordnet.WORDNET_PACKAGE[1:])
    # what `apt-get download --print-uris wordnet-base` prints on bookworm, over https
    assert wn.url() == ("https://deb.debian.org/debian/pool/main/w/wordnet/"
                        "wordnet-base_3.0-37_all.deb")
    by_name = {p.name: p.url() for p in PACKAGES}
    assert by_name["openclipart-png"] == ("https://deb.debian.org/debian/pool/main/o/openclipart/"
                                          "openclipart-png_0.18%2Bdfsg-19_all.deb")
    assert by_name["tuxpaint-stamps-default"].endswith(
        "/pool/main/t/tuxpaint-stamps/tuxpaint-stamps-default_2022.06.04-1_all.deb")
    assert by_name["dataset-fashion-mnist"].endswith(
        "/pool/main/d/dataset-fashion-mnist/"
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb")
    assert by_name["emoji-datasource-google"] == (
        "https://registry.npmjs.org/emoji-datasource-google/-/"
        "emoji-datasource-google-16.0.0.tgz")
    lib = Package("libfoo1", "apt", "2.0-1", "libfoo1_2.0-1_amd64.deb", "0" * 64, "libfoo")
    assert "/pool/main/libf/libfoo/libfoo1_2.0-1_amd64.deb" in lib.url()
    scoped = Package("@scope/pkg", "npm", "1.2.3", "scope-pkg-1.2.3.tgz", "0" * 64)
    assert scoped.url() == "https://registry.npmjs.org/@scope/pkg/-/pkg-1.2.3.tgz"
    monkeypatch.setenv("OODBENCH_DEBIAN_MIRROR", "http://mirror.local/debian/")
    assert wn.url().startswith("http://mirror.local/debian/pool/main/w/wordnet/")


# -- download + unpack without Debian tools ----------------------------------------------------
def test_deb_and_tgz_download_and_unpack_without_apt_npm_or_dpkg(mirror: Path,
                                                                  tmp_path: Path) -> None:
    deb = _deb(WORDNET_FILES, links={"./usr/share/wordnet/noun": "data.noun",
                                     "./usr/share/wordnet/abs": "/etc/passwd"})
    _publish(mirror, "debian/pool/main/w/wordnet/wordnet-base_3.0-37_all.deb", deb)
    tgz = _tar({"package/emoji.json": b"[]", "package/img/1f600.png": b"png"}, "w:gz")
    _publish(mirror, "npm/emoji-datasource-google/-/emoji-datasource-google-16.0.0.tgz", tgz)
    apt = Package("wordnet-base", "apt", "1:3.0-37", "wordnet-base_1%3a3.0-37_all.deb",
                  _sha(deb), "wordnet")
    npm = Package("emoji-datasource-google", "npm", "16.0.0",
                  "emoji-datasource-google-16.0.0.tgz", _sha(tgz))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    seen: list[tuple[int, int]] = []
    for pkg in (apt, npm):
        archive = download(pkg, downloads, lambda done, total: seen.append((done, total)))
        assert archive == downloads / pkg.filename and _sha(archive.read_bytes()) == pkg.sha256
        unpack(pkg, archive, tmp_path / "raw" / pkg.name)
    assert seen[-1] == (len(tgz), len(tgz))
    wn = tmp_path / "raw" / "wordnet-base" / "usr" / "share" / "wordnet"
    assert (wn / "data.noun").read_bytes() == WORDNET_FILES["./usr/share/wordnet/data.noun"]
    assert os.readlink(wn / "noun") == "data.noun"  # a relative link is kept, as dpkg-deb does
    assert not (wn / "abs").exists() and not (wn / "abs").is_symlink()  # out of the tree: skipped
    assert (tmp_path / "raw" / "emoji-datasource-google" / "package" / "emoji.json").exists()
    assert not list(downloads.glob("*.part"))
    # a verified copy is reused: no second request
    before = len(_RangeHandler.requests)
    download(apt, downloads)
    assert len(_RangeHandler.requests) == before


@pytest.mark.parametrize("compression", ["gz", "bz2"])
def test_other_data_tar_compressions(mirror: Path, tmp_path: Path, compression: str) -> None:
    deb = _deb({"./a/b.txt": b"hello"}, compression)
    archive = tmp_path / "x.deb"
    archive.write_bytes(deb)
    pkg = Package("x", "apt", "1", "x.deb", _sha(deb))
    unpack(pkg, archive, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b.txt").read_bytes() == b"hello"


def test_zstd_without_a_decoder_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(core_download, "_zstd_reader", lambda raw: None)
    deb = _ar([("debian-binary", b"2.0\n"), ("data.tar.zst", b"\x28\xb5\x2f\xfd")])
    archive = tmp_path / "z.deb"
    archive.write_bytes(deb)
    with pytest.raises(MissingDataError) as info:
        unpack(Package("z", "apt", "1", "z.deb", _sha(deb)), archive, tmp_path / "out")
    assert "\n" not in str(info.value) and "zstandard" in str(info.value)


def test_fetch_wordnet_runs_with_no_debian_tools(mirror: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    deb = _deb(WORDNET_FILES)
    _publish(mirror, "debian/pool/main/w/wordnet/wordnet-base_3.0-37_all.deb", deb)
    monkeypatch.setattr(wordnet, "WORDNET_PACKAGE",
                        ("wordnet-base", "1:3.0-37", "wordnet-base_1%3a3.0-37_all.deb",
                         _sha(deb), "wordnet"))
    target = wordnet.fetch_wordnet(force=True)
    assert target == tmp_path / "data" / "wordnet"
    assert (target / "usr" / "share" / "wordnet" / "data.noun").exists()
    assert wordnet.wordnet_dir() == target / "usr" / "share" / "wordnet"


def test_interrupted_download_resumes_with_a_range_request(mirror: Path, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40
    _publish(mirror, "npm/p/-/p-1.0.0.tgz", payload)
    pkg = Package("p", "npm", "1.0.0", "p-1.0.0.tgz", _sha(payload))
    (tmp_path / "p-1.0.0.tgz.part").write_bytes(payload[:1000])
    assert download(pkg, tmp_path).read_bytes() == payload
    assert _RangeHandler.requests[-1] == ("/npm/p/-/p-1.0.0.tgz", "bytes=1000-")


def test_sha256_mismatch_is_one_line_and_leaves_nothing(mirror: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    served = _deb(WORDNET_FILES)
    _publish(mirror, "debian/pool/main/w/wordnet/wordnet-base_3.0-37_all.deb", served)
    pinned = "ab" * 32
    monkeypatch.setattr(wordnet, "WORDNET_PACKAGE",
                        ("wordnet-base", "1:3.0-37", "wordnet-base_1%3a3.0-37_all.deb", pinned,
                         "wordnet"))
    from oodbench.paths import data_dir

    assert data_dir() == tmp_path / "data"
    with pytest.raises(MissingDataError) as info:
        wordnet.fetch_wordnet(force=True)
    text = str(info.value)
    assert "\n" not in text
    assert f"sha256 {_sha(served)}, expected {pinned}" in text
    assert "OODBENCH_DEBIAN_MIRROR" in text and "`apt-get` (the fallback) is not installed" in text
    downloads = data_dir() / "downloads"
    assert not downloads.exists() or not any(downloads.iterdir())  # no file, no .part
    assert not (data_dir() / "wordnet").exists()
    assert not list(data_dir().glob(".wordnet-*"))


def test_unreachable_mirror_names_the_url_and_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OODBENCH_NPM_REGISTRY", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("PATH", str(tmp_path))
    pkg = Package("p", "npm", "1.0.0", "p-1.0.0.tgz", "0" * 64)
    with pytest.raises(MissingDataError) as info:
        download(pkg, tmp_path)
    text = str(info.value)
    assert "\n" not in text and "http://127.0.0.1:9/p/-/p-1.0.0.tgz" in text
    assert "OODBENCH_NPM_REGISTRY" in text and "`npm` (the fallback) is not installed" in text

"""Image folders and image lists: symlinked sub-folders are followed, OpenOOD's
``benchmark_imglist`` files define a set when present, and a suite names its FPR95 convention."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

import oodbench.cli as cli
import oodbench.plugins as plugins_module
from oodbench.data.sources import folder_files, resolve_source
from oodbench.data.suite import load_suite
from oodbench.errors import MissingDataError, OODBenchError
from oodbench.paths import REPO_ROOT

SUITES = REPO_ROOT / "oodbench" / "suites"


def _pngs(folder: Path, names: list[str], shade: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (4, 4), (i, shade, 0)).save(folder / name)


# -- symlinked sub-folders ---------------------------------------------------------------------
def test_symlinked_class_folder_is_followed(tmp_path: Path) -> None:
    """A Textures-like root whose second class folder is a symlink to another disk: all four
    images count (rglob found 2 and the run then reported an incomplete download)."""
    elsewhere = tmp_path / "other-disk" / "bumpy"
    _pngs(elsewhere, ["b0.png", "b1.png"], 2)
    root = tmp_path / "dtd" / "images"
    _pngs(root / "banded", ["a0.png", "a1.png"], 1)
    (root / "bumpy").symlink_to(elsewhere, target_is_directory=True)
    spec = {"type": "imagefolder", "root": str(root), "expected_count": 4}
    images = resolve_source(spec, "Textures", None)
    rel = [Path(k).relative_to(root).as_posix() for k in images.keys]
    assert rel == ["banded/a0.png", "banded/a1.png", "bumpy/b0.png", "bumpy/b1.png"]
    # an ID set whose class folder itself is a link
    ids = resolve_source({"type": "imagefolder", "root": str(root)}, "id", ["banded", "bumpy"])
    assert ids.labels.tolist() == [0, 0, 1, 1]


def test_symlink_loops_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _pngs(root / "a", ["x.png"])
    _pngs(root / "a" / "deep", ["y.png"])
    (root / "a" / "deep" / "up").symlink_to(root, target_is_directory=True)  # loop
    (root / "self").symlink_to(".", target_is_directory=True)  # loop on the root
    (root / "dangling").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    _, files, _ = folder_files({"root": str(root)}, "x", None)
    assert [f.relative_to(root).as_posix() for f in files] == ["a/deep/y.png", "a/x.png"]


def test_fingerprint_of_a_plain_folder_is_unchanged(tmp_path: Path) -> None:
    """Same listing order (sorted as paths) and fingerprint as the rglob listing had."""
    from oodbench.cache import content_key

    root = tmp_path / "plain"
    _pngs(root, ["b.png", "a-c.png"])
    _pngs(root / "a", ["z.png", "y.JPG"])
    (root / "notes.txt").write_text("not an image")
    images = resolve_source({"type": "imagefolder", "root": str(root)}, "x", None)
    old_listing = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    assert images.keys == [str(p) for p in old_listing]
    entries = [(str(p.relative_to(root)), p.stat().st_size) for p in old_listing]
    # the listing part of the key (issue 21: the key itself adds every file's content hash)
    assert images.listing_fingerprint == content_key(
        {"type": "imagefolder", "root": str(root)}, entries, [-1] * 4)


# -- OpenOOD image lists -----------------------------------------------------------------------
@pytest.fixture
def openood(tmp_path: Path) -> Path:
    """A tiny OpenOOD v1.5 layout: lists + images_largescale/ + images_classic/."""
    base = tmp_path / "openood"
    lists = base / "benchmark_imglist" / "imagenet"
    lists.mkdir(parents=True)
    _pngs(base / "images_largescale" / "imagenet_1k" / "val", ["v1.JPEG", "v2.JPEG", "v3.JPEG"])
    _pngs(base / "images_largescale" / "ssb_hard" / "n1", ["s1.JPEG", "s2.JPEG", "extra.JPEG"])
    _pngs(base / "images_classic" / "texture" / "banded", ["t1.jpg"])
    (lists / "test_imagenet.txt").write_text(
        "imagenet_1k/val/v2.JPEG 1\nimagenet_1k/val/v1.JPEG 0\n\n")
    (lists / "test_ssb_hard.txt").write_text("ssb_hard/n1/s2.JPEG -1\nssb_hard/n1/s1.JPEG -1\n")
    (lists / "test_textures.txt").write_text("texture/banded/t1.jpg -1\n")
    return base


def _spec(base: Path, name: str, root: str, extra: dict[str, Any] | None = None) -> dict:
    return {"type": "imagefolder", "root": str(base.parent / "folder-mode" / name),
            "imglist": str(base / "benchmark_imglist" / "imagenet" / f"test_{name}.txt"),
            "imglist_root": str(base / root), **(extra or {})}


def test_imglist_gives_exactly_the_listed_images_in_list_order(openood: Path) -> None:
    ssb = resolve_source(_spec(openood, "ssb_hard", "images_largescale",
                               {"expected_count": 49000}), "SSB-hard", None)
    large = openood / "images_largescale"
    assert ssb.keys == [str(large / "ssb_hard/n1/s2.JPEG"), str(large / "ssb_hard/n1/s1.JPEG")]
    assert ssb.labels.tolist() == [-1, -1]  # extra.JPEG is not listed: not read
    ids = resolve_source(_spec(openood, "imagenet", "images_largescale"), "imagenet-1k",
                         ["tench", "goldfish"])
    assert [Path(k).name for k in ids.keys] == ["v2.JPEG", "v1.JPEG"]
    assert ids.labels.tolist() == [1, 0]  # the list's labels are the class indices
    tex = resolve_source(_spec(openood, "textures", "images_classic"), "Textures", None)
    assert len(tex) == 1


def test_a_listed_image_missing_is_one_line(openood: Path) -> None:
    (openood / "images_largescale" / "ssb_hard" / "n1" / "s1.JPEG").unlink()
    spec = _spec(openood, "ssb_hard", "images_largescale", {"obtain": "run the script"})
    with pytest.raises(MissingDataError) as info:
        resolve_source(spec, "SSB-hard", None)
    text = str(info.value)
    assert "\n" not in text and "1 of the 2 images listed" in text
    assert "ssb_hard/n1/s1.JPEG" in text and text.endswith("To obtain it: run the script")


def test_bad_labels_and_paths_in_a_list_are_errors(openood: Path) -> None:
    lists = openood / "benchmark_imglist" / "imagenet"
    (lists / "test_imagenet.txt").write_text("imagenet_1k/val/v1.JPEG 7\n")
    with pytest.raises(OODBenchError, match="not a class index 0-1"):
        resolve_source(_spec(openood, "imagenet", "images_largescale"), "id", ["a", "b"])
    (lists / "test_ssb_hard.txt").write_text("/etc/passwd -1\n")
    with pytest.raises(OODBenchError, match="not a relative path"):
        resolve_source(_spec(openood, "ssb_hard", "images_largescale"), "x", None)


def test_without_the_list_the_folder_is_read_with_the_same_fingerprint(tmp_path: Path) -> None:
    folder = tmp_path / "ssb"
    _pngs(folder, ["a.png", "b.png"])
    plain = {"type": "imagefolder", "root": str(folder)}
    with_list = {**plain, "imglist": str(tmp_path / "absent.txt"),
                 "imglist_root": str(tmp_path / "openood")}
    assert resolve_source(with_list, "x", None).keys == resolve_source(plain, "x", None).keys
    assert resolve_source(with_list, "x", None).fingerprint == \
        resolve_source(plain, "x", None).fingerprint


def test_imagenet_openood_reads_openoods_lists(monkeypatch, tmp_path: Path) -> None:
    """The suite's sets point at OpenOOD's list names and roots (configs/datasets/imagenet/
    imagenet_ood.yml: images_largescale, Textures under images_classic) under ${data}/openood."""
    suite = load_suite(SUITES / "imagenet-openood.yaml")
    assert suite.fpr_convention == "openood"
    sources = {"imagenet-1k": suite.id_test, **{s.name: s.source for s in suite.ood}}
    expected = {"imagenet-1k": "test_imagenet.txt", "SSB-hard": "test_ssb_hard.txt",
                "NINCO": "test_ninco.txt", "iNaturalist": "test_inaturalist.txt",
                "Textures": "test_textures.txt", "OpenImage-O": "test_openimage_o.txt"}
    for name, listing in expected.items():
        assert sources[name]["imglist"] == f"${{data}}/openood/benchmark_imglist/imagenet/{listing}"
        root = "images_classic" if name == "Textures" else "images_largescale"
        assert sources[name]["imglist_root"] == f"${{data}}/openood/{root}"
    assert "imglist" not in sources["ImageNet-O"]  # not an OpenOOD set
    # with a tiny OpenOOD copy under ${data}/openood the suite reads it
    data = tmp_path / "data"
    monkeypatch.setenv("OODBENCH_DATA", str(data))
    lists = data / "openood" / "benchmark_imglist" / "imagenet"
    lists.mkdir(parents=True)
    _pngs(data / "openood" / "images_largescale" / "ninco" / "c", ["1.jpg", "2.jpg"])
    (lists / "test_ninco.txt").write_text("ninco/c/1.jpg -1\nninco/c/2.jpg -1\n")
    assert len(resolve_source(sources["NINCO"], "NINCO", None)) == 2


# -- the suite's FPR95 convention --------------------------------------------------------------
def _suite(tmp_path: Path, extra: str = "") -> Path:
    folder = tmp_path / "imgs"
    _pngs(folder / "a", ["1.png"])
    _pngs(folder / "o", ["1.png"])
    path = tmp_path / "conv.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: conv
        {extra}
        id:
          classes: [a]
          test: {{type: imagefolder, root: {folder}}}
        ood:
          - {{name: o, source: {{type: imagefolder, root: {folder / 'o'}}}}}
        """))
    return path


def test_fpr_convention_key_is_checked(tmp_path: Path) -> None:
    assert load_suite(_suite(tmp_path)).fpr_convention is None
    assert load_suite(_suite(tmp_path, "fpr_convention: openood")).fpr_convention == "openood"
    with pytest.raises(OODBenchError,
                       match="fpr_convention must be one of 'paper', 'openood', got 'tpr95'"):
        load_suite(_suite(tmp_path, "fpr_convention: tpr95"))


@pytest.mark.parametrize(("extra", "option", "expected"), [
    ("fpr_convention: openood", [], "openood"),
    ("fpr_convention: openood", ["--fpr-convention", "paper"], "paper"),
    ("", [], "paper"),
])
def test_run_uses_the_suites_convention_unless_given(tmp_path: Path, registry, monkeypatch,
                                                     extra: str, option: list[str],
                                                     expected: str) -> None:
    import oodbench.runner as runner

    monkeypatch.setattr(plugins_module, "_REGISTRY", registry)
    seen: list[str] = []

    def fake_run(request: Any, *args: Any, **kwargs: Any) -> dict:
        seen.append(request.fpr_convention)
        raise OODBenchError("stop here")

    monkeypatch.setattr(runner, "run", fake_run)
    result = CliRunner().invoke(cli.app, ["run", "-m", "mcm", "-s", str(_suite(tmp_path, extra)),
                                          "--device", "cpu", *option])
    assert "stop here" in result.output
    assert seen == [expected]


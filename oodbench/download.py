"""Download one pinned file over HTTP(S): resumable, checked against its sha256, atomic.

urllib honours ``HTTPS_PROXY``; ``file://`` URLs work too. Used for the offline world's
packages, WordNet and the method plugins' released word lists.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = 60  # per blocking read, not per file
CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (bytes done, bytes total; 0 when unknown)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


class FetchError(Exception):
    """The direct download failed; the message is one line."""


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def http_fetch(url: str, target: Path, sha256: str, progress: Progress | None = None) -> Path:
    """Download ``url`` to ``target`` through ``target.part`` and check its sha256.

    An interrupted download keeps its ``.part`` and resumes with an HTTP range request; a
    file with the wrong checksum is deleted (nothing is left behind) and raises.
    """
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    from oodbench import __version__

    headers = {"User-Agent": f"oodbench/{__version__} (+urllib)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if have and getattr(response, "status", None) != 206:
                have = 0  # the server ignored the range: start over
            length = int(response.headers.get("Content-Length") or 0)
            total = have + length if length else 0
            done = have
            with open(part, "ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total or done)
    except urllib.error.HTTPError as exc:
        if not (exc.code == 416 and have):  # 416 with a .part: it is already complete
            raise FetchError(f"HTTP {exc.code} {one_line(exc.reason)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:  # .part kept for a resume
        reason = getattr(exc, "reason", exc)
        raise FetchError(one_line(reason) or type(exc).__name__) from None
    got = file_sha256(part)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise FetchError(f"the file has sha256 {got}, expected {sha256} (the server sent a "
                          f"different file; removed)")
    part.replace(target)
    return target

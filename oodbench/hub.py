"""Is the Hugging Face hub reachable? Asked once per process, in about a second when it is not.

Without a network, ``datasets`` and ``huggingface_hub`` retry for a minute or more before they
fail or fall back to their cache. When a quick TCP probe of the hub fails and the user has not
decided (``HF_HUB_OFFLINE`` unset), we switch those libraries to offline mode: cached data loads
at once and missing data fails at once with our one-line error.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import cache
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 1.5


@cache
def host_reachable(url: str) -> bool:
    """A quick TCP probe of the host of ``url`` (once per process)."""
    parsed = urlparse(url)
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    return host_reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


def prefer_offline_when_unreachable() -> bool:
    """Set offline mode for the HF libraries if the hub cannot be reached; True if offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0", "false", "False"):
        return True
    if hub_reachable():
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    # the libraries read the variable at import time: patch copies already imported
    for module, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_HUB_OFFLINE")):
        if module in sys.modules:
            setattr(sys.modules[module], attr, True)
    return True


def model_available(model: str, marker: str = "config.json") -> bool:
    """Whether a Hugging Face model can be loaded here: a local path, a copy in the HF cache
    (its ``marker`` file), or a reachable hub. Cheap: nothing is downloaded."""
    from pathlib import Path

    if not model or Path(model).expanduser().exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(model, marker), str):
            return True
    except Exception:  # not a repo id (e.g. a missing local path): only the hub can say
        pass
    return not prefer_offline_when_unreachable()

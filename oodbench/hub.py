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


def probe_target(url: str) -> str:
    """What a TCP probe for ``url`` must reach: the proxy that requests for it go through
    (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, minus ``NO_PROXY`` hosts), else ``url``.

    Behind a proxy a direct connection to the hub may be refused although the libraries reach
    it through the proxy, so the proxy host is the one to probe.
    """
    from urllib.request import getproxies, proxy_bypass

    parsed = urlparse(url)
    proxies = getproxies()  # the *_proxy variables, upper or lower case
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if not proxy or (parsed.hostname and proxy_bypass(parsed.hostname)):
        return url
    return proxy if "://" in proxy else f"http://{proxy}"


def reachable(url: str) -> bool:
    """``host_reachable`` through the configured proxy, if any (see :func:`probe_target`)."""
    return host_reachable(probe_target(url))


def hub_reachable() -> bool:
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


_OFFLINE_SET_HERE = False  # prefer_offline_when_unreachable set HF_HUB_OFFLINE, not the user


def offline_set_by_user() -> bool:
    """Whether HF_HUB_OFFLINE is on because the user set it (not because the probe failed)."""
    return _offline_on() and not _OFFLINE_SET_HERE


def _offline_on() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0", "false", "False")


def offline_hint(unknown: str = " (no hub access?)") -> str:
    """Why a hub download failed, for a one-line error: " (HF_HUB_OFFLINE is set)" when the
    user set it, " (the Hugging Face hub is unreachable)" when the probe found no hub and set
    it, ``unknown`` otherwise."""
    if offline_set_by_user():
        return " (HF_HUB_OFFLINE is set)"
    if _OFFLINE_SET_HERE and _offline_on():
        return " (the Hugging Face hub is unreachable)"
    return unknown


def prefer_offline_when_unreachable() -> bool:
    """Set offline mode for the HF libraries if the hub cannot be reached; True if offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0", "false", "False"):
        return True
    if hub_reachable():
        return False
    global _OFFLINE_SET_HERE
    _OFFLINE_SET_HERE = True
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

from __future__ import annotations

import sys
import types

import pytest

from oodbench import hub


@pytest.fixture
def fresh_probe(monkeypatch):
    hub.host_reachable.cache_clear()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield
    hub.host_reachable.cache_clear()


def test_unreachable_hub_switches_libraries_offline(monkeypatch, fresh_probe):
    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(hub.socket, "create_connection", refuse)
    fake = types.SimpleNamespace(HF_HUB_OFFLINE=False)
    monkeypatch.setitem(sys.modules, "datasets.config", fake)
    assert hub.prefer_offline_when_unreachable() is True
    assert hub.os.environ["HF_HUB_OFFLINE"] == "1" and fake.HF_HUB_OFFLINE is True


def test_reachable_hub_and_user_choice_are_left_alone(monkeypatch, fresh_probe):
    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(hub.socket, "create_connection", lambda *a, **k: Conn())
    assert hub.prefer_offline_when_unreachable() is False
    assert "HF_HUB_OFFLINE" not in hub.os.environ
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user decided: no probe needed
    assert hub.prefer_offline_when_unreachable() is True

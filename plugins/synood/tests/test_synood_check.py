"""The SynOOD plugin passes oodbench.testing.check_plugin."""

from __future__ import annotations

from oodbench.testing import check_plugin
from oodbench_synood import plugin

NEEDS_SAMPLES = "trains on the synthesizer's images and a negative label bank (test_synood.py)"


def test_synood_passes_check_plugin():
    check_plugin(plugin, skip={"synood-projection": NEEDS_SAMPLES,
                               "synood-label-tuning": NEEDS_SAMPLES})

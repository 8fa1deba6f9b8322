"""The MM-OOD plugin passes oodbench.testing.check_plugin."""

from __future__ import annotations

from oodbench.testing import check_plugin
from oodbench_mmood import plugin

RENDERS = "renders outlier images with the mini diffusion model (~40 s a run on a CPU)"


def test_mmood_passes_check_plugin():
    check_plugin(plugin, skip={"mmood-labels": RENDERS, "mmood-far": RENDERS})

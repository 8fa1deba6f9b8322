"""The offline mini world's plugin passes oodbench.testing.check_plugin."""

from __future__ import annotations

from oodbench.testing import check_plugin
from oodbench_mini import plugin


def test_mini_passes_check_plugin():
    check_plugin(plugin)

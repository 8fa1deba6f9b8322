"""The EOE plugin passes oodbench.testing.check_plugin."""

from __future__ import annotations

from oodbench.testing import check_plugin
from oodbench_eoe import plugin


def test_eoe_passes_check_plugin():
    check_plugin(plugin)

"""The OLE plugin passes oodbench.testing.check_plugin (on a tiny fake WordNet)."""

from __future__ import annotations

from oodbench.testing import check_plugin
from oodbench_ole import plugin


def test_ole_passes_check_plugin(fake_wordnet):
    check_plugin(plugin)

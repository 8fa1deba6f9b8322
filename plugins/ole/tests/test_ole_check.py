"""The OLE plugin passes oodbench.testing.check_plugin (on a tiny fake WordNet)."""

from __future__ import annotations

from oodbench.testing import check_plugin
from oodbench_ole import plugin


def test_ole_passes_check_plugin(fake_wordnet):
    # ole-clipn's scores need a CLIPN backbone ("no" tower), which the toy backbone is not;
    # plugins/ole/tests/test_ole_clipn.py and tests/test_offline_clipn.py run it
    check_plugin(plugin, skip={"ole-clipn": "needs a CLIPN backbone (mini-clipn, clipn-b16)"})

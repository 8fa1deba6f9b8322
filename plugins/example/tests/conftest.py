"""The example plugin is not installed in the development environment (its methods would join
the offline leaderboard): its tests import it from its source folder."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1]
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

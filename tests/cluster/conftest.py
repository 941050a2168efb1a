"""The Cluster cases reuse the fault-suite helpers of ``tests/faults/faultkit.py``.

pytest puts ``tests/faults`` on ``sys.path`` only when it collects a test from there; running
``tests/cluster`` alone needs it too. The same module name is used either way, so `faultkit` is
imported once.
"""

from __future__ import annotations

import sys
from pathlib import Path

_FAULTS = str(Path(__file__).resolve().parents[1] / "faults")
if _FAULTS not in sys.path:
    sys.path.insert(0, _FAULTS)

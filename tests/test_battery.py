"""The bad-input battery (scripts/battery.py): 147 bad inputs and faults against the real commands on tiny models.
Every case must end without a traceback, lose nothing, and be right about what happened."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.multiproc
def test_battery_has_no_tracebacks_no_data_lost_and_nothing_silently_wrong():
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "battery.py")], capture_output=True, text=True,
                          env=env, timeout=900, cwd=REPO)
    summary = re.search(r"tracebacks: (\d+), data lost: (\d+), silently wrong: (\d+), ok: (\d+)", proc.stdout)
    assert summary, proc.stdout[-3000:] + proc.stderr[-3000:]
    tracebacks, lost, wrong, ok = map(int, summary.groups())
    assert (tracebacks, lost, wrong) == (0, 0, 0), proc.stdout[-6000:]
    assert ok >= 60 and proc.returncode == 0

"""bench/fleet.py --quick runs end to end: stand-in EKS clusters, the operator as its own process,
one cluster then the fleet, then one of three dark in each mode, and its figures are whole.

It checks what the run proves rather than timings (two shared cores make those the benchmark's
business): every grant went Active and every expiry happened on the healthy clusters while the dark
one hung, and the operator logged no traceback. (The breaker's states are tests/clusters/test_gate.py's
and tests/integration/test_fleet_isolation.py's: the quick windows are shorter than a connect timeout.)
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_quick_fleet_bench_measures_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "one cluster" in run.stdout and "3 clusters" in run.stdout
    for side in ("one", "fleet"):
        figures = result[side]
        assert figures["rss_mb"] > 20 and figures["startup_s"] > 0
        assert figures["calls_per_target_per_min"]["mean"] > 0  # the sweep reached every target
        for key in ("to_active_s", "expiry_lag_s"):
            assert figures[key]["missing"] == 0 and math.isfinite(figures[key]["p99"]), (side, key)
    modes = {scenario["mode"]: scenario for scenario in result["scenarios"]}
    assert set(modes) == {"light", "dark", "stall"}
    for mode in ("dark", "stall"):
        scenario = modes[mode]
        assert scenario["dark"] == 1 and scenario["healthy"] == 2
        assert scenario["new_to_active_s"]["missing"] == 0, scenario
        assert scenario["expiry_lag_s"]["missing"] == 0, scenario
    assert result["operator_log_tracebacks"] == 0

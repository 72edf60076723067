"""`jitgrant` with a fault the product has no setting for, for the chaos suite only.

Run as `python tests/chaos/wrapped_operator.py run ...` (the normal `jitgrant` command line). Two
environment variables, read only here, change the Runtime `jitgrant run` builds before it starts:

* `JITGRANT_CHAOS_CLOCK_SKEW=<seconds>`: this replica's wall clock is that far off (the Runtime's
  clock, which the reconciler, the scheduler and the sweep read, and the audit trail's), as on a
  node whose NTP is broken. Leader election reads the monotonic clock and is not skewed.
* `JITGRANT_CHAOS_EKS=<file>`: EKS targets reached through moto (a JSON file: `moto` URL, and
  `overrides`, cluster name -> API server URL), as `jitgrant_testing.aws.AWSStandIns` does for
  in-process operators; `jitgrant run --eks` has no way to point AWS at moto.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CLOCK_SKEW_ENV = "JITGRANT_CHAOS_CLOCK_SKEW"
EKS_ENV = "JITGRANT_CHAOS_EKS"


def skewed(clock: Callable[[], datetime], seconds: float) -> Callable[[], datetime]:
    offset = timedelta(seconds=seconds)
    return lambda: clock() + offset


def patch_runtime(runtime: Any, kubeconfig: str | None) -> None:
    skew = os.environ.get(CLOCK_SKEW_ENV)
    if skew:
        runtime.clock = skewed(runtime.clock, float(skew))
        if hasattr(runtime.audit, "_clock"):  # AuditTrail: the checkpoints' time
            runtime.audit._clock = skewed(runtime.audit._clock, float(skew))
    eks = os.environ.get(EKS_ENV)
    if eks:
        import boto3

        from jitgrant.clusters.connection import own_cluster_connection
        from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
        from jitgrant.clusters.registry import TargetClusters
        from jitgrant_testing.aws import OPERATOR_KEY_ID, OPERATOR_SECRET, REGION

        config = json.loads(Path(eks).read_text())
        moto = RegionEndpoints(sts=config["moto"], eks=config["moto"])
        runtime.targets = TargetClusters(
            own=own_cluster_connection(kubeconfig=kubeconfig),
            eks=EKSAccess(
                base_session=boto3.Session(
                    aws_access_key_id=OPERATOR_KEY_ID,
                    aws_secret_access_key=OPERATOR_SECRET,
                    region_name=REGION,
                ),
                default_endpoints=moto,
                endpoint_overrides={name: (url, None) for name, url in config["overrides"].items()},
            ),
        )


def main() -> int:
    import jitgrant.operator.runner
    from jitgrant.cli.main import main as jitgrant_main

    build_runtime = jitgrant.operator.runner.build_runtime

    def build(settings: Any, *, kubeconfig: Any, **kwargs: Any) -> Any:
        runtime = build_runtime(settings, kubeconfig=kubeconfig, **kwargs)
        patch_runtime(runtime, kubeconfig if isinstance(kubeconfig, str) else None)
        return runtime

    jitgrant.operator.runner.build_runtime = build  # cmd_run imports it from the module when it runs
    return jitgrant_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""How many CPU threads a trial uses: what it was given, never every core of a shared node.

torch, BLAS and the fast tokenizers size their thread pools from the machine's cores, not from
what the trial may use; two trials on one node then each run a pool as wide as the node and
both crawl (13.8 samples/s each against 72 with one thread each, measured on the dev cluster).
In order: OMP_NUM_THREADS if whoever packs trials set it (the local runner, the operator from a
CPU limit or request); the container's CPU quota (cgroup v2 cpu.max, v1 cfs_quota); a fair
share of the node when the pod was given no CPU (BERTSWEEP_NODE_CPUS over
BERTSWEEP_PARALLELISM); else the CPUs this process may run on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import bertsweep.contract as contract

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (
    Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def cgroup_cpus(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> int | None:
    """Whole CPUs of the container's quota, at least 1; None without a quota."""
    try:
        quota, period = v2.read_text().split()[:2]
        if quota != "max":
            return max(1, math.floor(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = (int(p.read_text()) for p in v1)
    except (OSError, ValueError):
        return None
    return max(1, math.floor(quota_us / period_us)) if quota_us > 0 else None


def choose_threads(env: Mapping[str, str], quota: int | None, available: int) -> int:
    """The thread count for a trial (see the module's docstring for the order)."""
    given = env.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    if quota is not None:
        return min(quota, available)
    try:
        node = int(env.get(contract.ENV_NODE_CPUS, ""))
        sharing = int(env.get(contract.ENV_PARALLELISM, ""))
    except ValueError:
        return available
    if node > 0 and sharing > 0:
        return max(1, min(available, node // min(sharing, node)))
    return available


def configure_threads(env: MutableMapping[str, str]) -> int:
    """Choose and set the thread count before torch or a tokenizer starts its pools."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    threads = choose_threads(env, cgroup_cpus(), available)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env.setdefault(variable, str(threads))
    return threads

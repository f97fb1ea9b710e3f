"""How torch's idle OpenMP threads wait: spin briefly, then sleep. Must be set before torch loads."""

from __future__ import annotations

import os

# Busy-wait iterations before an idle thread sleeps (libgomp: ~0.1 ms). Measured on a 2-core CPU (docs/experiments.md):
# training 22-24 images/s against 12-15 sleeping at once (PASSIVE) and 17-20 spinning until work comes (ACTIVE),
# and a tiny forward 2x faster than PASSIVE when idle, while ACTIVE is 15x slower when other processes busy the cores.
SPIN_COUNT = 10_000


def set_openmp_wait_policy() -> None:
    """Make OpenMP threads spin `SPIN_COUNT` times, then sleep — unless the user set OMP_WAIT_POLICY or
    GOMP_SPINCOUNT. libgomp reads them once, when torch loads, so call this before importing torch."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)

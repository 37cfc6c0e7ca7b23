"""The timed call checked once more after its timing loop, on fresh inputs.

The verification layer checks calls of its own, in a process that never timed anything. An
implementation that keeps its first result and hands it back (a cache keyed on the shape, a
stale output buffer), or that behaves differently once it has been called many times, passes
those checks and is timed doing less than the work. So after a unit's timing the runner makes
the same call once more on inputs it has not seen (another seed) and checks the result against
the float64 oracle with the random tier's bound (:func:`convbench.verify.checks.check_random`).
A failure turns the record's status to ``failed``, its times kept.
"""
from __future__ import annotations

from typing import Any

from convbench.verify.checks import SEED, check_random

__all__ = ["AFTER_SEED", "check_after_timing"]

#: the fresh inputs' seed: neither the timed inputs' (0) nor the check phase's
AFTER_SEED = SEED + 1


def check_after_timing(impl: Any, case: Any, direction: str) -> str | None:
    """None when one more call on fresh inputs matches the oracle, else why not (one line)."""
    bad = [r for r in check_random(impl, case, [direction], seed=AFTER_SEED) if r["status"] != "passed"]
    if not bad:
        return None
    first = bad[0]
    msg = (first.get("message") or first["status"]).split("; first bad: ")[0]
    return (f"after timing, the same call on fresh inputs {'raised' if first['status'] == 'error' else 'failed'} "
            f"the oracle check ({first['direction']}: {msg}); it may return a cached or stale result, "
            f"or behave differently while timed")

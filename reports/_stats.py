"""The statistics of ``convbench compare``: paired rounds, unpaired samples, instruction counts.

Each comparison of one measurement gives the relative change of its median, the change of its
minimum, a p-value and the smallest change the data could have detected (``detectable``: the
change a two-sided test at ``alpha`` would find with 80 % power, given the spread seen). Three
bases, best first:

- ``instructions``: both records carry a valgrind instruction count. Counts do not move with the
  machine's load: a change is its ratio, detectable down to :data:`INSTRUCTIONS_NOISE`.
- ``paired``: both records were timed in the same interleaved run (same ``paired`` id, one time
  per round each). The per-round ratios new/old cancel what the machine did during each round;
  the test is Wilcoxon's signed-rank test on their logarithms.
- ``samples``: two separate runs. Their medians cannot be compared to a few %: on a shared VM a
  run's calls fall into a fast and a slow state of the machine (seen: 3.4 ms and 5.5 ms for one
  call, in spells of tens of calls), and the share of slow calls differs from run to run, so the
  medians of unchanged code moved 10-18 % between runs where their minima moved 1-2 %. Separate
  runs are compared by their *floors*: the change is that of the minimum, and the test is
  Mann-Whitney U on each run's fastest samples (:data:`FLOOR_SHARE` of them, at least
  :data:`FLOOR_MIN`), which the slow state does not reach. The median's change is shown, not
  required. The detectable change adds the floor's own spread to :data:`FLOOR_NOISE`, the
  run-to-run spread of the minimum of one unchanged call (which one process cannot see: memory
  layout, which core, the machine's state when it started).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = ["Change", "paired_change", "unpaired_change", "instructions_change", "INSTRUCTIONS_NOISE",
           "POWER", "MIN_ROUNDS", "FLOOR_SHARE", "FLOOR_MIN", "FLOOR_NOISE"]

#: the power the detectable change is computed for
POWER = 0.8
#: relative spread of valgrind instruction counts between runs of one call (measured: docs)
INSTRUCTIONS_NOISE = 0.005
#: fewer paired rounds than this are compared as unpaired samples
MIN_ROUNDS = 5
#: a run's floor: its fastest samples, this share of them but at least FLOOR_MIN (all, if fewer)
FLOOR_SHARE = 0.05
FLOOR_MIN = 5
#: run-to-run relative spread of the minimum of one unchanged call in separate processes
#: (measured on the project's 2-vCPU VMs: 1.0-1.6 % at two threads, 2-3 % at one; docs/measurement.md)
FLOOR_NOISE = 0.015


@dataclass(frozen=True)
class Change:
    """One measurement's change, new against old (fractions, not %)."""

    basis: str
    change: float
    min_change: float
    p_value: float
    detectable: float
    n: int


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER))


def _robust_sd(x: np.ndarray) -> float:
    if len(x) < 2:
        return math.nan
    mad = 1.4826 * float(np.median(np.abs(x - np.median(x))))
    return mad if mad > 0 else float(np.std(x, ddof=1))


def paired_change(old: Sequence[float], new: Sequence[float], alpha: float) -> Change:
    """Change from per-round times of two implementations timed in the same rounds."""
    a, b = np.asarray(old, float), np.asarray(new, float)
    d = np.log(b) - np.log(a)
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(stats.wilcoxon(d, alternative="two-sided").pvalue)
    # the median of n values has ~sqrt(pi/2) times the standard error of their mean
    se = _robust_sd(d) * math.sqrt(math.pi / 2) / math.sqrt(len(d))
    return Change("paired", math.expm1(float(np.median(d))), float(b.min() / a.min() - 1), p,
                  math.expm1(_z(alpha) * se), len(d))


def floor(samples: Sequence[float]) -> np.ndarray:
    """A run's fastest samples (:data:`FLOOR_SHARE` of them, at least :data:`FLOOR_MIN`), sorted."""
    s = np.sort(np.asarray(samples, float))
    return s[:max(FLOOR_MIN, int(len(s) * FLOOR_SHARE))]


def unpaired_change(old: Sequence[float], new: Sequence[float], alpha: float,
                    old_median: float | None = None, new_median: float | None = None,
                    old_min: float | None = None, new_min: float | None = None) -> Change:
    """Change from the raw samples of two separate runs, judged on their floors (module docstring)."""
    a, b = np.asarray(old, float), np.asarray(new, float)
    fa, fb = floor(a), floor(b)
    p = float(stats.mannwhitneyu(fb, fa, alternative="two-sided").pvalue)
    med_a = old_median if old_median else float(np.median(a))
    med_b = new_median if new_median else float(np.median(b))
    min_a = old_min if old_min else float(a.min())
    min_b = new_min if new_min else float(b.min())
    la, lb = np.log(fa), np.log(fb)
    se = math.sqrt(_robust_sd(la) ** 2 / len(la) + _robust_sd(lb) ** 2 / len(lb) + 2 * FLOOR_NOISE ** 2)
    return Change("samples", med_b / med_a - 1, min_b / min_a - 1, p, math.expm1(_z(alpha) * se),
                  min(len(a), len(b)))


def instructions_change(old: float, new: float) -> Change:
    """Change of a valgrind instruction count (no test: counts do not move with load)."""
    c = new / old - 1
    return Change("instructions", c, c, 0.0 if abs(c) > INSTRUCTIONS_NOISE else 1.0, INSTRUCTIONS_NOISE, 1)

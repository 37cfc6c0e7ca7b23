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
- ``samples``: two separate runs. Mann-Whitney U on the raw samples; since consecutive samples
  of one run share its moment's speed, the detectable change is estimated from the medians of
  consecutive chunks of samples (so a run's drift counts), where there are enough samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = ["Change", "paired_change", "unpaired_change", "instructions_change", "INSTRUCTIONS_NOISE",
           "POWER", "MIN_ROUNDS"]

#: the power the detectable change is computed for
POWER = 0.8
#: relative spread of valgrind instruction counts between runs of one call (measured: docs)
INSTRUCTIONS_NOISE = 0.005
#: fewer paired rounds than this are compared as unpaired samples
MIN_ROUNDS = 5
_CHUNK = 3  # samples per chunk when estimating a run's drift


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


def _chunk_medians(s: np.ndarray) -> np.ndarray:
    k = len(s) // _CHUNK
    return np.array([np.median(c) for c in np.array_split(s, k)]) if k >= 3 else s


def unpaired_change(old: Sequence[float], new: Sequence[float], alpha: float,
                    old_median: float | None = None, new_median: float | None = None,
                    old_min: float | None = None, new_min: float | None = None) -> Change:
    """Change from the raw samples of two separate runs."""
    a, b = np.asarray(old, float), np.asarray(new, float)
    p = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    med_a = old_median if old_median else float(np.median(a))
    med_b = new_median if new_median else float(np.median(b))
    min_a = old_min if old_min else float(a.min())
    min_b = new_min if new_min else float(b.min())
    ca, cb = np.log(_chunk_medians(a)), np.log(_chunk_medians(b))
    se = math.sqrt(math.pi / 2) * math.sqrt(_robust_sd(ca) ** 2 / len(ca) + _robust_sd(cb) ** 2 / len(cb))
    return Change("samples", med_b / med_a - 1, min_b / min_a - 1, p, math.expm1(_z(alpha) * se),
                  min(len(a), len(b)))


def instructions_change(old: float, new: float) -> Change:
    """Change of a valgrind instruction count (no test: counts do not move with load)."""
    c = new / old - 1
    return Change("instructions", c, c, 0.0 if abs(c) > INSTRUCTIONS_NOISE else 1.0, INSTRUCTIONS_NOISE, 1)

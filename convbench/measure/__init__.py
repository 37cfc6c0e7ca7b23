"""Measurement: timer, memory, machine fingerprint and peaks, time budget, the bench runner.

``calls`` prepares one call of an implementation (inputs made and converted, untimed): what every
front end times; ``timer`` times one call (warm-up, blocks of calls, repetitions until the spread
is small or the budget is spent); ``memory`` measures the peak extra bytes of one call per
backend; ``machine`` fingerprints the machine and measures its GEMM and memory-copy peaks;
``threads`` sets the thread pools and parks OpenBLAS's spinning workers; ``budget`` predicts a
case's time from its FLOPs and decides what fits; ``measurement`` takes one measurement (the
prepared call timed, its memory, a check after timing); ``bench`` runs implementations x cases
through it and appends records through :mod:`convbench.store`; ``summary`` prints them as a
table; ``isolate`` runs calls in a subprocess.
"""
from __future__ import annotations

__all__: list[str] = []

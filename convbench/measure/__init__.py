"""Measurement: timer, memory, machine fingerprint and peaks, time budget, the bench runner.

``timer`` times one call (warm-up, blocks of calls, repetitions until the spread is small or the
budget is spent); ``memory`` measures the peak extra bytes of one call per backend; ``machine``
fingerprints the machine and measures its GEMM and memory-copy peaks; ``budget`` predicts a case's
time from its FLOPs and decides what fits; ``bench`` runs implementations x cases and appends
records through :mod:`convbench.store`; ``isolate`` runs calls in a subprocess.
"""
from __future__ import annotations

__all__: list[str] = []

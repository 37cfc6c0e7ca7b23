"""The case catalogue: named suites of operator calls, and case descriptors.

A :class:`Case` is one operator call (operator, parameters, dtype) with a readable id. Suites are
named lists of cases, registered per operator with :func:`suite`; the ones convbench ships live in
:mod:`convbench.cases.catalogue`. A descriptor such as ``n8c64h56w56o64k3s1p1`` names a single
case; :func:`parse_descriptor` reads it.
"""
from __future__ import annotations

from convbench.cases.case import Case, conv
from convbench.cases.descriptor import parse_descriptor
from convbench.cases.suites import DTYPE_CHOICES, cases_from, get_suite, suite_names, with_dtype
from convbench.cases.table import suite

__all__ = ["Case", "conv", "parse_descriptor", "suite", "get_suite", "suite_names", "cases_from", "with_dtype",
           "DTYPE_CHOICES"]

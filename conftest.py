"""Test-session settings for every test directory (tests/, suites/)."""
from __future__ import annotations

import os
import tempfile

# The bench adds every time it measures to this machine's crossover file, which the ``fastest``
# implementation chooses from. Timings taken under the test suite's load (and of tiny cases) must
# not steer a user's ``fastest`` (nor land in a file the user named): the session gets a crossover
# file of its own. Tests that need one set ``CONVBENCH_CROSSOVER`` (or pass ``crossover=``).
os.environ["CONVBENCH_CROSSOVER"] = os.path.join(tempfile.mkdtemp(prefix="convbench-test-"), "crossover.jsonl")

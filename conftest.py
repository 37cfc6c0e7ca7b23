"""Test-session settings for every test directory (tests/, suites/)."""
from __future__ import annotations

import os
import tempfile

# The bench adds every time it measures to this machine's crossover file, which the ``fastest``
# implementation chooses from. Timings taken under the test suite's load (and of tiny cases) must
# not steer a user's ``fastest`` (nor land in a file the user named): the session gets a crossover
# file of its own. Tests that need one set ``CONVBENCH_CROSSOVER`` (or pass ``crossover=``).
# One directory for the session: pytest-xdist's workers inherit the controller's environment.
_SESSION = os.environ.get("CONVBENCH_TEST_SESSION_DIR") or tempfile.mkdtemp(prefix="convbench-test-")
os.environ["CONVBENCH_TEST_SESSION_DIR"] = _SESSION
os.environ["CONVBENCH_CROSSOVER"] = os.path.join(_SESSION, "crossover.jsonl")
# Likewise the machine's cached fingerprint and peaks: peaks measured while the suite's other
# worker runs read low, and cached in the user's directory they would put every later % of peak
# of the user's own runs too high. The session caches in a directory of its own.
os.environ["CONVBENCH_CACHE_DIR"] = os.path.join(_SESSION, "cache")

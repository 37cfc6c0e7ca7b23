"""Reading check records: their statuses and the likely causes their messages name. Shared by
the command line, the verifier's report and ``reports/`` (which reads records and may import this,
and nothing that runs implementations)."""
from __future__ import annotations

from typing import Any

__all__ = ["CHECK_STATUSES", "FAILING", "causes_of"]

#: every status a check record may have, in the order reports show them
CHECK_STATUSES = ("passed", "failed", "error", "timeout", "crashed", "skipped", "unsupported")
#: the statuses that fail a check: ``convbench check`` exits 1 on any of them
FAILING = ("failed", "error", "timeout", "crashed")


def causes_of(r: dict[str, Any]) -> list[str]:
    """The likely causes a failed record's message names (convbench.verify.diagnose); none for
    an error, timeout or crash, whose message is the implementation's own."""
    if r.get("status", "failed") != "failed":
        return []
    msg = r.get("message") or ""
    head = msg.partition("; first bad: ")[0]
    if "; likely cause: " in head:
        return [head.partition("; likely cause: ")[2]]
    # the shape check's form: problems joined by "; ", each "... (likely cause: CAUSE)"
    return [part.partition("(likely cause: ")[2][:-1] for part in msg.split("; ")
            if "(likely cause: " in part and part.endswith(")")]

"""Where units of work run: a pool of isolated processes here, or the workers of a Dask cluster.

``get_executor("local", jobs=4)`` or ``get_executor("dask://HOST:PORT")`` gives an executor whose
``run(units)`` yields an :class:`Outcome` per :class:`Unit` as it finishes. The check and bench
runners make the units and turn outcomes into records; nothing here knows what a check or a timed
call is (the kinds' functions are named in :data:`~convbench.execute.units.KINDS`).
"""
from __future__ import annotations

from typing import Any

from convbench._errors import ParamError
from convbench.execute.cluster import DaskExecutor, parse_address
from convbench.execute.local import LocalExecutor, default_jobs
from convbench.execute.units import HOLD, KINDS, Outcome, Unit, run_unit, ship_source, worker_machine

__all__ = ["HOLD", "get_executor", "LocalExecutor", "DaskExecutor", "Unit", "Outcome", "KINDS", "run_unit",
           "ship_source", "worker_machine", "default_jobs", "EXECUTORS"]

#: what ``--executor`` takes
EXECUTORS = "'local' or 'dask://HOST:PORT'"


def get_executor(executor: Any = "local", jobs: int | None = None) -> Any:
    """The executor ``executor`` names, or ``executor`` itself when it is one already.

    Parameters
    ----------
    executor : str or executor
        ``"local"`` (a pool of isolated processes here) or ``"dask://HOST:PORT"`` (a Dask
        cluster's scheduler).
    jobs : int, optional
        Processes of the local pool (default: the cores); not for a cluster, whose workers decide.

    Raises
    ------
    ParamError
        An unknown executor, ``jobs`` with a cluster, or a cluster that cannot be reached.
    """
    if not isinstance(executor, str):
        if hasattr(executor, "run"):
            return executor
        raise ParamError(f"executor must be {EXECUTORS}, got {executor!r}")
    if executor == "local":
        return LocalExecutor(jobs)
    if executor.startswith("dask://"):
        parse_address(executor)
        if jobs is not None:
            raise ParamError(f"jobs={jobs} applies to the local executor; a Dask cluster's workers run "
                             f"as many units as they have threads")
        return DaskExecutor(executor)
    raise ParamError(f"executor must be {EXECUTORS}, got {executor!r}")

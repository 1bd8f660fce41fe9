"""Local runs without Snakemake's job rate limiter, whose re-check timers multiply.

Snakemake 9.27's command line always sets `--max-jobs-per-timespan` (default 100/1s). With a
limiter, every scheduler pass that finds ready jobs starts a `threading.Timer` for another pass
one timespan later, and every finished job adds a pass of its own, so the live timers grow
with the jobs finished: after N jobs about N passes run per timespan, and each pass stats
every input of every ready job. In `snakemake all -c2` that was about 30 % of one core on
average and nearly all of one late in the run (docs/scaling.md#snakemakes-own-passes).
Snakemake's API default is no limiter, and a local run has nothing to throttle: jobs start
only as cores free up, and every finished job wakes the scheduler anyway. Remote executors
(Slurm, Kubernetes) keep the limit they were given, since there it paces submissions to a
shared controller. A limit given explicitly to a local run goes too (the scheduler cannot
tell it from the default); `--no-hooks` keeps it.
"""

from __future__ import annotations

from typing import Any


def drop_local_rate_limit(workflow: Any) -> bool:
    """Remove the job rate limiter of a local run's scheduler; True if one was removed.

    Called from `onstart:`, after Snakemake built its scheduler and before the first pass.
    A remote executor's run, or a scheduler without the attribute (another Snakemake
    version), is left as it is.
    """
    scheduler: Any = getattr(workflow, "scheduler", None)
    if not workflow.local_exec or getattr(scheduler, "job_rate_limiter", None) is None:
        return False
    scheduler.job_rate_limiter = None
    return True

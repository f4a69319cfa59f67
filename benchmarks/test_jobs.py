"""Job runner throughput: 500 no-op jobs across 50 targets, run by `drain` until done.

Every round enqueues 500 jobs of a trivial kind (10 per target, so the per-target order
check is exercised), commits them, and times `drain(app)`, which claims, runs and records
each job one at a time in this process. `extra_info["jobs_per_s"]` is 500 / median.
The handler does nothing, so this is the runner's own cost per job (claim + run + record).

Soft target (median, on a 2-core development machine): at least 100 jobs/s, i.e. 500 jobs
in under 5 s, on either backend.
"""
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.outbox import enqueue
from portal.jobs.registry import handler
from portal.jobs.runner import drain
from portal.models import Job
from portal.models.jobs import JOB_DONE

from .conftest import median, soft_target

KIND = "benchmark_noop"
JOBS, TARGETS = 500, 50
TARGET_JOBS_PER_S = 100


@handler(KIND)
def _noop(job, ctx) -> None:
    """Does nothing: the benchmark measures the runner, not a handler."""


def _enqueue_round():
    # Finished jobs of earlier rounds go, so every round starts from the same table.
    db.session.execute(sa.delete(Job).where(Job.kind == KIND))
    for n in range(JOBS):
        enqueue(KIND, {"n": n}, account_id=None, target=f"benchmark:{n % TARGETS}")
    db.session.commit()


def test_job_runner_throughput(benchmark, app):
    ran = []

    def run():
        ran.append(drain(app))

    benchmark.pedantic(run, setup=_enqueue_round, rounds=3, iterations=1)

    assert ran == [JOBS] * len(ran)
    done = db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.kind == KIND, Job.state == JOB_DONE))
    assert done == JOBS
    benchmark.extra_info.update(jobs=JOBS, targets=TARGETS, backend=db.engine.dialect.name)
    if median(benchmark):
        benchmark.extra_info["jobs_per_s"] = round(JOBS / median(benchmark), 1)
    soft_target(benchmark, JOBS / TARGET_JOBS_PER_S)

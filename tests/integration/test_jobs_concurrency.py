"""Several workers at once: every job delivered exactly once, none left behind, and jobs of
one target still in order (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE)."""
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.outbox import enqueue
from portal.jobs.registry import handler
from portal.jobs.runner import run_due_jobs
from portal.models import Job

DELIVERED: Counter = Counter()
ORDER: dict[str, list[int]] = {}
_lock = threading.Lock()


@handler("test.deliver")
def _deliver(job, ctx):
    with _lock:
        DELIVERED[job.id] += 1
        ORDER.setdefault(job.target, []).append(job.id)


@pytest.fixture(autouse=True)
def _clear():
    DELIVERED.clear()
    ORDER.clear()
    yield


def enqueue_many(count: int, targets: int) -> list[int]:
    jobs = [
        enqueue("test.deliver", {"n": n}, account_id=None, target=f"box:{n % targets}") for n in range(count)
    ]
    db.session.commit()
    return [job.id for job in jobs]


def unfinished() -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Job).where(Job.state.in_(("queued", "running")))
    )


def run_workers(app, count: int, timeout: float = 300.0) -> float:
    """`count` workers (threads, each with its own connections) until no job is left."""
    errors = []
    stop = threading.Event()

    def work(name):
        try:
            while not stop.is_set():
                if run_due_jobs(app, worker_id=name) == 0:
                    with app.app_context():
                        if unfinished() == 0:
                            return
                    time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"worker-{i}",)) for i in range(count)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    stop.set()
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "workers still busy after the timeout"
    return elapsed


def assert_each_delivered_once_in_order(ids):
    assert len(DELIVERED) == len(ids)
    duplicates = [job_id for job_id, n in DELIVERED.items() if n != 1]
    assert duplicates == []
    assert set(DELIVERED) == set(ids)
    for target, order in ORDER.items():
        assert order == sorted(order), f"jobs of {target} ran out of order"
    assert unfinished() == 0
    states = dict(db.session.execute(sa.select(Job.state, sa.func.count()).group_by(Job.state)).all())
    assert states == {"done": len(ids)}


# Several workers at once is the PostgreSQL deployment (SQLite runs one worker).
@pytest.mark.parametrize("backend", ["postgresql"])
def test_four_workers_deliver_a_thousand_jobs_exactly_once(app, backend):
    ids = enqueue_many(1000, targets=100)
    elapsed = run_workers(app, 4)
    assert_each_delivered_once_in_order(ids)
    print(f"\n1000 jobs, 4 workers, PostgreSQL: {elapsed:.2f} s, duplicates 0")


test_four_workers_deliver_a_thousand_jobs_exactly_once = pytest.mark.postgres_only(
    test_four_workers_deliver_a_thousand_jobs_exactly_once
)


# SQLite's claim under BEGIN IMMEDIATE.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_second_worker_on_sqlite_never_runs_a_job_twice(app, backend):
    ids = enqueue_many(200, targets=20)
    elapsed = run_workers(app, 2)
    assert_each_delivered_once_in_order(ids)
    print(f"\n200 jobs, 2 workers, SQLite: {elapsed:.2f} s, duplicates 0")

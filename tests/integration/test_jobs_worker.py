"""The worker loop: runs jobs and periodic tasks in its own thread, wakes up when a job is
committed, survives broken handlers and tasks, and stops when asked."""
import threading
import time

import pytest

from portal.extensions import db
from portal.jobs.outbox import enqueue
from portal.jobs.registry import handler, periodic
from portal.jobs.worker import start_in_background
from portal.models import Job

TICKS: list[str] = []
SEEN: list[int] = []
_lock = threading.Lock()


@handler("test.worker_note")
def _worker_note(job, ctx):
    with _lock:
        SEEN.append(job.id)


@handler("test.worker_bug")
def _worker_bug(job, ctx):
    raise RuntimeError("a bug in a handler")


# Off in every app that does not set these keys (e.g. other tests' live servers).
@periodic("JOBS_TEST_TICK_SECONDS")
def _tick(app):
    with _lock:
        TICKS.append("tick")


@periodic("JOBS_TEST_BROKEN_TICK_SECONDS")
def _broken_tick(app):
    raise RuntimeError("a bug in a periodic task")


@pytest.fixture(autouse=True)
def _clear():
    TICKS.clear()
    SEEN.clear()
    yield


@pytest.fixture
def worker(app):
    stops = []

    def start():
        stops.append(start_in_background(app))

    yield start
    for stop in stops:
        stop()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def add(kind, target="t:1") -> Job:
    job = enqueue(kind, {}, account_id=None, target=target)
    db.session.commit()
    return job


def state_of(job) -> str:
    db.session.expire_all()
    return db.session.get(Job, job.id).state


def test_background_worker_runs_committed_jobs(app, worker):
    worker()
    job = add("test.worker_note")
    assert wait_for(lambda: state_of(job) == "done")
    assert [job.id] == SEEN


def test_worker_wakes_at_once_when_a_job_is_committed(app, worker):
    app.config["JOB_POLL_SECONDS"] = 60.0
    worker()
    time.sleep(0.2)  # let it finish its first pass and go to sleep
    started = time.monotonic()
    job = add("test.worker_note")
    assert wait_for(lambda: state_of(job) == "done", timeout=5)
    assert time.monotonic() - started < 5  # far sooner than the 60 s poll


def test_worker_runs_periodic_tasks_again_and_again(app, worker):
    app.config["JOBS_TEST_TICK_SECONDS"] = 0.05
    worker()
    assert wait_for(lambda: len(TICKS) >= 3)


def test_broken_handler_and_broken_task_do_not_stop_the_worker(app, worker):
    app.config.update(JOBS_TEST_BROKEN_TICK_SECONDS=0.05, JOBS_TEST_TICK_SECONDS=0.05, JOB_MAX_ATTEMPTS=2)
    worker()
    broken = add("test.worker_bug", target="a")
    assert wait_for(lambda: state_of(broken) == "failed")
    fine = add("test.worker_note", target="b")
    assert wait_for(lambda: state_of(fine) == "done")
    assert wait_for(lambda: len(TICKS) >= 3)


def test_stopped_worker_runs_nothing_more(app, worker):
    stop = start_in_background(app)
    stop()
    job = add("test.worker_note")
    time.sleep(0.5)
    assert state_of(job) == "queued"


def test_worker_command_once_runs_what_is_due(app, runner):
    job = add("test.worker_note")
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 job runs" in result.output
    assert state_of(job) == "done"

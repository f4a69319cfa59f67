"""The outbox: jobs saved with the change, run once, retried with backoff, given up visibly,
kept in order per target, and taken over when a worker dies."""
import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.outbox import cancel, enqueue, requeue
from portal.jobs.registry import handler
from portal.jobs.runner import claim_next, drain, run_due_jobs
from portal.models import Job, utcnow
from portal.streamiot import errors as sie

RUNS: list[tuple[int, int, str]] = []  # (job id, attempt, target) for every handler call
GAVE_UP: list[tuple[int, str]] = []
RETRIES: list[tuple[int, str]] = []
_lock = threading.Lock()


def _note(job):
    with _lock:
        RUNS.append((job.id, job.attempts, job.target))


def _gave_up(job, reason):
    GAVE_UP.append((job.id, reason))


def _retrying(job, reason, retry_at):
    RETRIES.append((job.id, reason))


@handler("test.record")
def _record(job, ctx):
    _note(job)


@handler("test.flaky", on_give_up=_gave_up, on_retry=_retrying)
def _flaky(job, ctx):
    """Fails its first `fail_times` attempts with an error StreamIoT answered (the job's own
    backoff; StreamIoT out of reach is the platform's: test_platform_health.py)."""
    _note(job)
    if job.attempts <= job.payload.get("fail_times", 0):
        raise _server_error()


FAILED_ON = "StreamIoT failed on POST /things (500: internal server error)"


def _server_error():
    return sie.ServerError(FAILED_ON, status=500, body='{"error":"internal server error"}')


class Platform:
    down = False


@handler("test.while_down")
def _while_down(job, ctx):
    _note(job)
    if Platform.down:
        raise _server_error()


@handler("test.bad_request", on_give_up=_gave_up)
def _bad_request(job, ctx):
    _note(job)
    raise sie.BadRequest(
        "StreamIoT refused POST /things (400: malformed entity specification)", status=400
    )


@handler("test.permanent", on_give_up=_gave_up)
def _permanent(job, ctx):
    _note(job)
    raise PermanentFailure("The mailbox was removed before its PIN was sent")


@handler("test.bug")
def _bug(job, ctx):
    _note(job)
    raise ValueError("thing key 0b6f-secret-key")


@handler("test.wait", on_retry=_retrying)
def _wait(job, ctx):
    _note(job)
    raise RetryLater("waiting for the household's link to StreamIoT", delay=30)


@handler("test.retry_after")
def _retry_after(job, ctx):
    _note(job)
    # 429: StreamIoT answered, asking this caller to slow down (503 would be the platform's: its probe waits).
    raise sie.Unavailable("StreamIoT is unavailable (POST /things answered 429)", status=429, retry_after=120)


@pytest.fixture(autouse=True)
def _fresh_records():
    for log in (RUNS, GAVE_UP, RETRIES):
        log.clear()
    Platform.down = False
    yield


def add(kind, target="t:1", **kw) -> Job:
    payload = kw.pop("payload", {})
    job = enqueue(kind, payload, account_id=None, target=target, **kw)
    db.session.commit()
    return job


def runs_of(job) -> list[int]:
    return [attempt for job_id, attempt, _ in RUNS if job_id == job.id]


def test_enqueued_job_is_saved_only_with_the_callers_commit(app):
    enqueue("test.record", {"n": 1}, account_id=None, target="t:1")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0

    job = enqueue("test.record", {"n": 2}, account_id=None, target="t:1")
    db.session.commit()
    assert (job.state, job.attempts, job.max_attempts) == ("queued", 0, app.config["JOB_MAX_ATTEMPTS"])


def test_payload_must_be_plain_json(app):
    with pytest.raises(TypeError, match="plain JSON"):
        enqueue("test.record", {"account_id": uuid.uuid4()}, account_id=None, target="t:1")


def test_due_job_runs_once_and_is_done(app):
    job = add("test.record")
    assert drain(app) == 1
    assert runs_of(job) == [1]
    assert job.state == "done" and job.finished_at is not None
    assert job.lease_until is None and job.locked_by is None
    assert drain(app) == 0


def test_job_waits_until_it_is_due(app):
    later = utcnow() + timedelta(minutes=5)
    job = add("test.record", run_after=later)
    assert drain(app) == 0
    assert job.state == "queued"
    assert run_due_jobs(app, now=later + timedelta(seconds=1)) == 1
    assert job.state == "done"


def test_failing_job_is_retried_until_it_succeeds(app):
    job = add("test.flaky", payload={"fail_times": 2})
    drain(app)
    assert runs_of(job) == [1, 2, 3]
    assert job.state == "done"
    # The reason of the last failure stays visible for support.
    assert job.last_error == FAILED_ON
    assert [reason for _, reason in RETRIES] == [FAILED_ON] * 2


def test_one_pass_runs_each_job_at_most_once(app):
    job = add("test.flaky", payload={"fail_times": 5})
    assert run_due_jobs(app) == 1
    assert runs_of(job) == [1]
    assert job.state == "queued" and job.attempts == 1


def test_retry_waits_within_the_backoff_window(app):
    app.config.update(JOB_BACKOFF_BASE=10.0, JOB_BACKOFF_CAP=300.0)
    job = add("test.flaky", payload={"fail_times": 1})
    before = utcnow()
    run_due_jobs(app)
    assert job.state == "queued"
    # First retry: anywhere in [now, now + base], full jitter.
    assert before <= job.run_after <= utcnow() + timedelta(seconds=10)


def test_retry_after_from_streamiot_is_honoured(app):
    job = add("test.retry_after")
    before = utcnow()
    run_due_jobs(app)
    assert job.state == "queued"
    assert job.run_after >= before + timedelta(seconds=120)


def test_retry_later_counts_as_an_attempt_and_waits_its_delay(app):
    job = add("test.wait")
    before = utcnow()
    run_due_jobs(app)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.last_error == "waiting for the household's link to StreamIoT"
    assert before + timedelta(seconds=30) <= job.run_after <= utcnow() + timedelta(seconds=30)
    assert [(job.id, "waiting for the household's link to StreamIoT")] == RETRIES


def test_job_gives_up_after_max_attempts_and_stays_visible(app):
    job = add("test.flaky", payload={"fail_times": 99}, max_attempts=3)
    drain(app)
    assert runs_of(job) == [1, 2, 3]
    assert job.state == "failed" and job.finished_at is not None
    assert job.last_error == f"{FAILED_ON} (gave up after 3 attempts)"
    assert [(job.id, job.last_error)] == GAVE_UP


def test_bad_request_fails_at_once_with_the_reason(app):
    job = add("test.bad_request")
    drain(app)
    assert runs_of(job) == [1]
    assert job.state == "failed"
    assert job.last_error == "StreamIoT refused POST /things (400: malformed entity specification)"
    assert [(job.id, job.last_error)] == GAVE_UP


def test_permanent_failure_stops_retrying(app):
    job = add("test.permanent")
    drain(app)
    assert runs_of(job) == [1]
    assert (job.state, job.last_error) == ("failed", "The mailbox was removed before its PIN was sent")


def test_unexpected_error_is_retried_and_its_message_is_not_shown(app):
    job = add("test.bug", max_attempts=2)
    drain(app)
    assert runs_of(job) == [1, 2]
    assert job.state == "failed"
    assert "ValueError" in job.last_error
    assert "secret" not in job.last_error


def test_unknown_kind_is_retried_with_a_plain_reason(app):
    job = add("test.nobody_handles_this", max_attempts=2)
    drain(app)
    assert job.state == "failed"
    assert job.last_error.startswith("No handler for job kind 'test.nobody_handles_this'")


def test_jobs_for_one_target_run_in_order(app):
    first = add("test.flaky", target="gateway:1", payload={"fail_times": 1})
    second = add("test.record", target="gateway:1")
    other = add("test.record", target="gateway:2")

    run_due_jobs(app)
    # The second job of gateway:1 waits for the first; other targets are not held up.
    assert runs_of(first) == [1] and runs_of(second) == [] and runs_of(other) == [1]

    drain(app)
    order = [job_id for job_id, _, target in RUNS if target == "gateway:1"]
    assert order == [first.id, first.id, second.id]
    assert first.state == second.state == "done"


def test_a_given_up_job_no_longer_holds_up_its_target(app):
    first = add("test.permanent", target="mailbox:1")
    second = add("test.record", target="mailbox:1")
    drain(app)
    assert first.state == "failed"
    assert second.state == "done"


def test_limit_bounds_one_pass(app):
    jobs = [add("test.record", target=f"t:{i}") for i in range(5)]
    assert run_due_jobs(app, limit=2) == 2
    assert run_due_jobs(app) == 3
    assert all(job.state == "done" for job in jobs)


def test_job_of_a_killed_worker_is_finished_by_another_after_its_lease(app):
    job = add("test.record")
    now = utcnow()
    # A worker claims the job and dies before finishing it.
    assert claim_next("dead-worker", now, app.config["JOB_LEASE_SECONDS"]) == job.id

    assert drain(app) == 0  # its lease still holds: nobody else touches the job
    db.session.refresh(job)
    assert (job.state, job.locked_by) == ("running", "dead-worker")

    after_lease = now + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 1)
    assert run_due_jobs(app, now=after_lease) == 1
    assert runs_of(job) == [2]
    assert job.state == "done" and job.locked_by is None


def test_requeue_gives_a_failed_job_fresh_attempts(app):
    Platform.down = True
    job = add("test.while_down", max_attempts=2)
    drain(app)
    assert job.state == "failed"

    Platform.down = False
    assert requeue(job.id) is True
    db.session.commit()
    assert (job.state, job.attempts) == ("queued", 0)
    drain(app)
    assert job.state == "done"
    assert runs_of(job) == [1, 2, 1]


def test_requeue_refuses_a_job_that_is_not_failed(app):
    job = add("test.record")
    assert requeue(job.id) is False
    db.session.commit()
    drain(app)
    assert requeue(job.id) is False
    assert job.state == "done"


def test_cancel_stops_a_queued_job_without_calling_its_handlers(app):
    job = add("test.flaky", target="mailbox:9", payload={"fail_times": 99})
    later = add("test.record", target="mailbox:9")
    assert cancel(job.id, "Cancelled by support") is True
    db.session.commit()
    # Whoever cancels has recorded what it means for the domain; no hook runs.
    assert GAVE_UP == []

    drain(app)
    assert runs_of(job) == []
    assert job.state == "cancelled"
    assert later.state == "done"  # a cancelled job no longer holds up its target


def test_cancel_refuses_a_finished_job(app):
    job = add("test.record")
    drain(app)
    assert cancel(job.id) is False
    assert job.state == "done"

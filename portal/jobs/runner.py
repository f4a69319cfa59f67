"""Claim due jobs, run their handlers outside any lock, and record what happened."""
import logging
import os
import random
import secrets
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app, has_app_context

from portal.extensions import db
from portal.jobs import platform
from portal.jobs.context import JobContext
from portal.jobs.errors import RetryLater, Verdict, judge
from portal.jobs.registry import get_handler, periodic_tasks, stoppable, streamiot_kinds
from portal.models import Job, utcnow
from portal.models.jobs import JOB_DONE, JOB_FAILED, JOB_QUEUED, JOB_RUNNING

log = logging.getLogger("portal.jobs")

# The Table itself: Job.__table__ is typed as any FromClause, which sa.update() does not take.
_jobs = Job.metadata.tables[Job.__tablename__]
# Built once: making these per claim cost about a third of a claim's time (benchmarks/test_jobs.py).
_PICKED = _jobs.alias("picked")
_EARLIER = _jobs.alias("earlier")


def new_worker_id() -> str:
    """Unique per worker (host, process, random), so a lease names exactly one runner."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def backoff_delay(attempt: int, base: float, cap: float, rng=random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempt-1)))."""
    if base <= 0 or cap <= 0:
        return 0.0
    exponent = min(max(attempt - 1, 0), 62)
    return rng.uniform(0, min(cap, base * 2**exponent))


def retry_delay(verdict: Verdict, attempt: int, config, rng=random) -> float:
    if verdict.exact_delay is not None:
        return max(float(verdict.exact_delay), 0.0)
    delay = backoff_delay(attempt, config["JOB_BACKOFF_BASE"], config["JOB_BACKOFF_CAP"], rng)
    if verdict.min_delay:
        # The platform said when to come back (Retry-After): never earlier than that.
        delay = max(delay, float(verdict.min_delay))
    return delay


# --- claiming ------------------------------------------------------------------------

def _pick(now: datetime, exclude, *, taking_over: bool, only_kinds=None, skip_kinds=None) -> sa.Select:
    """The one job to claim next: due, not held up by an older job of its target (and of
    `only_kinds` / none of `skip_kinds`, while StreamIoT is down)."""
    job, earlier = _PICKED, _EARLIER
    # Same-target order: nothing runs while an older job for its target is unfinished.
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.target == job.c.target,
            earlier.c.id < job.c.id,
            # Literal values, so a prepared (generic) plan still matches the partial index.
            earlier.c.state.in_(
                sa.bindparam("unfinished", (JOB_QUEUED, JOB_RUNNING), expanding=True, literal_execute=True)
            ),
        )
        # OFFSET keeps this a per-row probe of the (target, id) index: PostgreSQL
        # cannot flatten it into an anti-join over every unfinished job, a plan it
        # picks when the table's statistics are stale (e.g. right after a burst).
        .limit(1)
        .offset(0)
        .exists()
    )
    if taking_over:
        # A worker that died mid-job: its lease ran out, someone else takes over.
        due = sa.and_(job.c.state == JOB_RUNNING, job.c.lease_until < now)
    else:
        due = sa.and_(job.c.state == JOB_QUEUED, job.c.run_after <= now)
    query = sa.select(job.c.id).where(due, ~blocked)
    if exclude:
        query = query.where(job.c.id.not_in(list(exclude)))
    if only_kinds is not None:
        query = query.where(job.c.kind.in_(list(only_kinds)))
    if skip_kinds:
        query = query.where(job.c.kind.not_in(list(skip_kinds)))
    # run_after alone, the order of the due index, so the scan stops at the first free job.
    query = query.order_by(job.c.run_after).limit(1)
    if db.engine.dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True, of=job)
    return query


def claim_next(
    worker_id: str, now: datetime, lease_seconds: float, exclude=(), *, take_over=True, conn=None,
    only_kinds=None, skip_kinds=None,
) -> int | None:
    """Claim one due job and commit the claim at once; return its id (None: nothing due).

    One statement, UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING id:
    PostgreSQL locks the pick with FOR UPDATE SKIP LOCKED, so any number of workers
    claim side by side without waiting for or double-taking a row; on SQLite the
    UPDATE is the transaction's first statement, so it takes the single write lock
    before it reads and a second worker waits instead of reading the same row as free.
    `take_over` also looks for running jobs whose lease ran out. Needs an app context
    (or `conn`, reused between claims). `only_kinds` / `skip_kinds` narrow the pick (the
    platform gate: portal/jobs/platform.py).
    """
    if conn is None:
        with db.engine.connect() as own:
            return claim_next(worker_id, now, lease_seconds, exclude, take_over=take_over, conn=own,
                              only_kinds=only_kinds, skip_kinds=skip_kinds)
    job_id = None
    try:
        for taking_over in (True, False) if take_over else (False,):
            pick = _pick(now, exclude, taking_over=taking_over, only_kinds=only_kinds,
                         skip_kinds=skip_kinds).scalar_subquery()
            job_id = conn.execute(
                sa.update(_jobs)
                .where(_jobs.c.id == pick)
                .values(
                    state=JOB_RUNNING,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    locked_by=worker_id,
                    attempts=_jobs.c.attempts + 1,
                    updated_at=now,
                )
                .returning(_jobs.c.id)
            ).scalar()
            if job_id is not None:
                break
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return job_id


class _LeaseKeeper:
    """Extends the lease of the job being run while its handler is still busy, so a slow
    but alive worker is not mistaken for a dead one."""

    def __init__(self, engine, worker_id: str, lease_seconds: float):
        self.engine = engine
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.current: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, job_id: int | None) -> None:
        self.current = job_id
        if job_id is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="iotlock-lease", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(self.lease_seconds / 3, 0.05)):
            job_id = self.current
            if job_id is None:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        sa.update(_jobs)
                        .where(
                            _jobs.c.id == job_id,
                            _jobs.c.locked_by == self.worker_id,
                            _jobs.c.state == JOB_RUNNING,
                        )
                        .values(lease_until=utcnow() + timedelta(seconds=self.lease_seconds))
                    )
            except Exception:  # noqa: BLE001  (a missed extension only risks a takeover)
                log.warning("could not extend the lease of job %s", job_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- running one job -----------------------------------------------------------------

DONE, RETRY, FAILED, LOST = "done", "retry", "failed", "lost"
TAKEOVER_CHECK_SECONDS = 5.0


def _record(job_id: int, worker_id: str, **values) -> bool:
    """Write the outcome, only if this worker still holds the job (a takeover wins)."""
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.locked_by == worker_id, _jobs.c.state == JOB_RUNNING)
            .values(lease_until=None, locked_by=None, **values)
        ),
    )
    db.session.commit()
    return result.rowcount == 1


def _call_hook(hook, job_id: int, *args) -> None:
    """Run a domain hook in a fresh transaction; a failing hook never loses the outcome."""
    try:
        job = db.session.get(Job, job_id, populate_existing=True)
        hook(job, *args)
        db.session.commit()
    except Exception:  # noqa: BLE001
        db.session.rollback()
        log.exception("job %s: the %s hook failed", job_id, getattr(hook, "__name__", "domain"))


def run_claimed(app, job_id: int, worker_id: str, clock=utcnow, gate: platform.Gate = platform.KNOWN_UP) -> str:
    """Run the handler of a job this worker claimed and record the outcome. `gate` is what
    the platform's health was at the claim: a probe's outcome moves it up or keeps it down."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        if job is None:
            return LOST
        registered = get_handler(job.kind)
        kind, attempts, max_attempts = job.kind, job.attempts, job.max_attempts
        try:
            if registered is None:
                raise RetryLater(f"No handler for job kind {kind!r} in this worker")
            registered.fn(job, JobContext(app, job, worker_id))
            db.session.commit()
        except Exception as exc:  # noqa: BLE001  (every failure becomes a recorded outcome)
            db.session.rollback()
            verdict = judge(exc)
            if verdict.unexpected:
                log.error("job %s (%s) attempt %d: unexpected error", job_id, kind, attempts, exc_info=exc)
            else:
                log.warning("job %s (%s) attempt %d failed: %s", job_id, kind, attempts, verdict.reason)
        else:
            now = clock()
            if registered is not None and registered.streamiot and not gate.platform_known_up:
                platform.answered(now)
            if not _record(job_id, worker_id, state=JOB_DONE, finished_at=now, updated_at=now):
                log.warning("job %s (%s) finished after its lease was taken over", job_id, kind)
                return LOST
            log.info("job %s (%s) done, attempt %d", job_id, kind, attempts)
            return DONE

        now = clock()
        if verdict.unreachable and registered is not None and registered.streamiot:
            return _hold(app, job_id, worker_id, registered, verdict, attempts, max_attempts, now, gate)
        if gate.mode == platform.PROBE:
            if verdict.platform_answered:
                platform.answered(now)
            else:
                platform.release_probe(db.session, worker_id, sent=True)
                db.session.commit()
        elif verdict.platform_answered and not gate.platform_known_up:
            platform.answered(now)
        if verdict.retry and attempts < max_attempts:
            retry_at = now + timedelta(seconds=retry_delay(verdict, attempts, app.config))
            recorded = _record(
                job_id, worker_id, state=JOB_QUEUED, run_after=retry_at, last_error=verdict.reason, updated_at=now
            )
            if not recorded:
                return LOST
            if registered and registered.on_retry:
                _call_hook(registered.on_retry, job_id, verdict.reason, retry_at)
            return RETRY

        reason = verdict.reason
        if verdict.retry:
            reason = f"{reason} (gave up after {attempts} attempts)"
        if not _record(job_id, worker_id, state=JOB_FAILED, last_error=reason, finished_at=now, updated_at=now):
            return LOST
        log.warning("job %s (%s) failed for good: %s", job_id, kind, reason)
        if registered and registered.on_give_up:
            _call_hook(registered.on_give_up, job_id, reason)
        return FAILED


def _hold(app, job_id: int, worker_id: str, registered, verdict: Verdict, attempts: int, max_attempts: int,
          now: datetime, gate: platform.Gate) -> str:
    """StreamIoT could not be reached: the platform's health takes it from here. The job
    waits queued and due (the gate holds it until StreamIoT answers), its attempt given
    back unless it is the one that found the platform up."""
    reason = verdict.reason
    retry_at, counted = platform.unreachable(worker_id, reason, now, probing=gate.mode == platform.PROBE,
                                             config=app.config, retry_after=verdict.min_delay)
    if counted and attempts >= max_attempts:
        reason = f"{reason} (gave up after {attempts} attempts)"
        if not _record(job_id, worker_id, state=JOB_FAILED, last_error=reason, finished_at=now, updated_at=now):
            return LOST
        if registered.on_give_up:
            _call_hook(registered.on_give_up, job_id, reason)
        return FAILED
    values = {} if counted else {"attempts": _jobs.c.attempts - 1}
    if not _record(job_id, worker_id, state=JOB_QUEUED, run_after=now, last_error=reason, updated_at=now, **values):
        return LOST
    if registered.on_retry:
        _call_hook(registered.on_retry, job_id, reason, retry_at)
    return RETRY


# --- passes ----------------------------------------------------------------------------

def run_due_jobs(app, limit: int | None = None, *, worker_id: str | None = None, now=None, stop=None) -> int:
    """One pass: claim and run due jobs one at a time (each at most once per pass) until
    none is due, `limit` is reached or `stop` is set. Returns how many ran.

    `now` fixes the clock (tests: "later than the lease"); `worker_id` names the runner.
    """
    worker_id = worker_id or new_worker_id()
    clock = (lambda: now) if now is not None else utcnow
    count = 0
    retried: set[int] = set()
    next_takeover = 0.0
    with app.app_context():
        lease_seconds = float(app.config["JOB_LEASE_SECONDS"])
        keeper = _LeaseKeeper(db.engine, worker_id, lease_seconds)
        try:
            with db.engine.connect() as conn:
                while (limit is None or count < limit) and not (stop is not None and stop.is_set()):
                    # Dead workers' jobs are rare: look for them at the start of a pass and
                    # every few seconds, not before every claim.
                    take_over = time.monotonic() >= next_takeover
                    if take_over:
                        next_takeover = time.monotonic() + TAKEOVER_CHECK_SECONDS
                    gate, job_id = _claim_through_gate(worker_id, clock(), lease_seconds, retried, take_over, conn)
                    if job_id is None:
                        break
                    keeper.track(job_id)
                    try:
                        outcome = run_claimed(app, job_id, worker_id, clock, gate)
                    finally:
                        keeper.track(None)
                    if outcome == RETRY:
                        retried.add(job_id)
                    count += 1
        finally:
            keeper.stop()
    _show_results_to_caller(app)
    return count


def _claim_through_gate(worker_id: str, now: datetime, lease_seconds: float, exclude, take_over: bool, conn
                        ) -> tuple[platform.Gate, int | None]:
    """Claim the next job the platform's health allows: any (up), one StreamIoT job as the
    probe (this worker won it), or none of the StreamIoT jobs (down, not probing)."""
    try:
        gate = platform.gate(conn, worker_id, now, lease_seconds)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    if gate.mode == platform.OPEN:
        return gate, claim_next(worker_id, now, lease_seconds, exclude, take_over=take_over, conn=conn)
    kinds = streamiot_kinds()
    if gate.mode == platform.PROBE:
        job_id = claim_next(worker_id, now, lease_seconds, exclude, take_over=take_over, conn=conn, only_kinds=kinds)
        if job_id is not None:
            return gate, job_id
        try:
            platform.release_probe(conn, worker_id, sent=False)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        gate = platform.Gate(platform.CLOSED)
    return gate, claim_next(worker_id, now, lease_seconds, exclude, take_over=take_over, conn=conn,
                            skip_kinds=kinds)


def release_held_jobs(app, worker_id: str) -> int:
    """A worker stopping in the middle of a job hands it back, as a lease running out would
    but at once: queued, due now, the interrupted attempt not counted. A handler may have
    done part of its work; jobs are written to be taken over (as after a crash), and the
    interrupted run can no longer record an outcome (_record wants the lease). Returns how
    many were released."""
    with app.app_context():
        result = cast(sa.CursorResult, db.session.execute(
            sa.update(_jobs)
            .where(_jobs.c.locked_by == worker_id, _jobs.c.state == JOB_RUNNING)
            .values(state=JOB_QUEUED, locked_by=None, lease_until=None, run_after=utcnow(),
                    attempts=sa.case((_jobs.c.attempts > 0, _jobs.c.attempts - 1), else_=0))
        ))
        db.session.commit()
        return result.rowcount


def drain(app, max_rounds: int = 100) -> int:
    """Tests and tools: run passes until nothing is due now (a retry due now runs in the
    next round, so a job may run up to max_attempts times). Returns how many runs."""
    total = 0
    for _ in range(max_rounds):
        ran = run_due_jobs(app)
        total += ran
        if ran == 0:
            break
    return total


def _show_results_to_caller(app) -> None:
    """Called from inside the app's context (tests, `flask worker --once`): expire the
    caller's session so it reads what the jobs wrote, unless it holds unsaved changes."""
    # current_app is a LocalProxy that Flask types as Flask (Flask's own cli.py ignores this the same way).
    if not has_app_context() or current_app._get_current_object() is not app:  # type: ignore[attr-defined]
        return
    session = db.session()
    if not (session.new or session.dirty or session.deleted):
        session.expire_all()


# --- periodic tasks --------------------------------------------------------------------

class PeriodicSchedule:
    """When each @periodic task is next due (monotonic clock); all are due at start."""

    def __init__(self):
        self.next_due: dict[str, float] = {}

    def run_due(self, app, stop=None) -> float:
        """Run the tasks that are due; return seconds until the next one (inf: none)."""
        soonest = float("inf")
        for task in periodic_tasks():
            interval = task.interval(app.config)
            if interval is None:
                continue
            if time.monotonic() >= self.next_due.get(task.name, 0.0) and not (stop is not None and stop.is_set()):
                try:
                    with app.app_context(), stoppable(stop):
                        task.fn(app)
                except Exception:  # noqa: BLE001  (one broken task must not stop the others)
                    log.exception("periodic task %s failed", task.name)
                self.next_due[task.name] = time.monotonic() + interval
            soonest = min(soonest, self.next_due.get(task.name, 0.0) - time.monotonic())
        return max(soonest, 0.0)


def next_job_due_in(app) -> float | None:
    """Seconds until the earliest queued job is due (None: no queued job)."""
    with app.app_context():
        earliest = db.session.scalar(sa.select(sa.func.min(Job.run_after)).where(Job.state == JOB_QUEUED))
    if earliest is None:
        return None
    if earliest.tzinfo is None:  # min() over SQLite loses the column type's conversion
        earliest = datetime.fromisoformat(str(earliest)).replace(tzinfo=UTC)
    return (earliest - utcnow()).total_seconds()

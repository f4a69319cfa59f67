"""Service-level outbox operations: enqueue with the caller's change, requeue, cancel."""
import json
import threading
import uuid
from datetime import datetime

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import Account, Job, new_id, utcnow
from portal.models.jobs import JOB_CANCELLED, JOB_FAILED, JOB_QUEUED, JOB_RUNNING
from portal.services.errors import Conflict

LINK_HOUSEHOLD = "link_household"

# Set after a commit that carried new jobs, so an in-process worker starts at once
# instead of at its next poll.
wakeup = threading.Event()
_ENQUEUED = "iotlock_jobs_enqueued"


@event.listens_for(Session, "after_commit")
def _wake_worker(session) -> None:
    if session.info.pop(_ENQUEUED, False):
        wakeup.set()


@event.listens_for(Session, "after_rollback")
def _forget_enqueued(session) -> None:
    session.info.pop(_ENQUEUED, None)


def enqueue(
    kind: str,
    payload: dict,
    *,
    account_id: uuid.UUID | None,
    target: str,
    run_after: datetime | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Add a job to db.session WITHOUT committing: it is saved with the caller's change or
    not at all. Jobs with the same `target` run strictly in id (enqueue) order."""
    try:
        json.dumps(payload)
    except TypeError as exc:
        raise TypeError(f"job payload must be plain JSON (ids as str): {exc}") from None
    job = Job(
        kind=kind,
        payload=payload,
        account_id=account_id,
        target=target,
        state=JOB_QUEUED,
        attempts=0,
        max_attempts=max_attempts or current_app.config["JOB_MAX_ATTEMPTS"],
        run_after=run_after or utcnow(),
    )
    db.session.add(job)
    db.session.info[_ENQUEUED] = True
    return job


def enqueue_household_link(account: Account) -> Job:
    """Queue the link of a new household to StreamIoT (portal.jobs.handlers.accounts)."""
    if account.id is None:
        # The id is otherwise assigned at flush; the job needs it now.
        account.id = new_id()
    return enqueue(
        LINK_HOUSEHOLD,
        {"account_id": str(account.id)},
        account_id=account.id,
        target=f"account:{account.id}",
    )


def requeue(job: Job) -> Job:
    """Give a failed (or cancelled) job a fresh set of attempts, due now. The caller commits."""
    if job.state not in (JOB_FAILED, JOB_CANCELLED):
        raise Conflict(f"Only a failed or cancelled job can be retried; this one is {job.state}.")
    job.state = JOB_QUEUED
    job.attempts = 0
    job.run_after = utcnow()
    job.lease_until = None
    job.locked_by = None
    job.finished_at = None
    db.session.info[_ENQUEUED] = True
    return job


def cancel(job: Job, reason: str = "Cancelled") -> Job:
    """Stop a job that has not run to completion; the domain hears it as a give-up.
    A job running right now cannot be cancelled (its outcome is on its way). The caller commits."""
    if job.state == JOB_RUNNING:
        raise Conflict("This job is running right now; try again in a moment.")
    if job.state != JOB_QUEUED and job.state != JOB_FAILED:
        raise Conflict(f"This job is already {job.state}.")
    was_failed = job.state == JOB_FAILED
    job.state = JOB_CANCELLED
    job.last_error = reason
    job.finished_at = utcnow()
    job.lease_until = None
    job.locked_by = None
    if not was_failed:
        from portal.jobs.registry import get_handler, load_handlers

        load_handlers()
        registered = get_handler(job.kind)
        if registered and registered.on_give_up:
            registered.on_give_up(job, reason)
    return job

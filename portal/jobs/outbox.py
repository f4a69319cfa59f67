"""The outbox, as services use it: enqueue with the caller's change, requeue, cancel.

A leaf module: it imports only the models, so any service may import it without a cycle.
"""
import json
import threading
import uuid
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.extensions import db
from portal.models import Account, Job, new_id, utcnow
from portal.models.jobs import JOB_CANCELLED, JOB_FAILED, JOB_QUEUED

LINK_HOUSEHOLD = "link_household"
# Account jobs (portal/jobs/handlers/accounts.py).
SEND_PASSWORD_RESET = "mail.password_reset"
CLOSE_HOUSEHOLD = "close_household"

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


def enqueue(kind: str, payload: dict, **fields: Any) -> Job:
    """Add a job to db.session WITHOUT committing: it is saved with the caller's change or
    not at all. Jobs with the same `target` run strictly in id (enqueue) order. `fields`
    (account_id, target, run_after, max_attempts) as job_row takes them."""
    job = Job(**job_row(kind, payload, **fields))
    db.session.add(job)
    db.session.info[_ENQUEUED] = True
    return job


def job_row(
    kind: str,
    payload: dict,
    *,
    account_id: uuid.UUID | None,
    target: str,
    run_after: datetime | None = None,
    max_attempts: int | None = None,
) -> dict:
    """A new job's columns, as enqueue saves them (insert_jobs takes a list of them)."""
    try:
        json.dumps(payload)
    except TypeError as exc:
        raise TypeError(f"job payload must be plain JSON (ids as str): {exc}") from None
    return {
        "kind": kind,
        "payload": payload,
        "account_id": account_id,
        "target": target,
        "state": JOB_QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts or current_app.config["JOB_MAX_ATTEMPTS"],
        "run_after": run_after or utcnow(),
    }


# One INSERT for all the jobs of a change, their ids back in the order given.
_INSERT_JOBS = sa.insert(Job).returning(Job.id, sort_by_parameter_order=True)


def insert_jobs(rows: list[dict]) -> list[int]:
    """Save these jobs (job_row's) now, in the caller's transaction, and give their ids in
    order: for a change that saves its rows itself rather than through the session's flush
    (pins.add_pin). Committed with the caller's change or not at all, as enqueue's."""
    ids = list(db.session.connection().execute(_INSERT_JOBS, rows).scalars())
    db.session.info[_ENQUEUED] = True
    return ids


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


def requeue(job_id: int) -> bool:
    """Give a failed (or cancelled) job a fresh set of attempts, due now: a compare-and-set,
    False when the job is not failed or cancelled (any more). The caller commits."""
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(Job)
            .where(Job.id == job_id, Job.state.in_((JOB_FAILED, JOB_CANCELLED)))
            .values(state=JOB_QUEUED, attempts=0, run_after=utcnow(), lease_until=None, locked_by=None,
                    finished_at=None)
            .execution_options(synchronize_session="fetch")
        ),
    )
    if result.rowcount != 1:
        return False
    db.session.info[_ENQUEUED] = True
    return True


def cancel(job_id: int, reason: str = "Cancelled") -> bool:
    """Stop a job that has not started (queued) or has failed: a compare-and-set, False when
    it is running or finished. Nothing else happens: whoever cancels a job has already
    recorded what that means for its domain. The caller commits."""
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(Job)
            .where(Job.id == job_id, Job.state.in_((JOB_QUEUED, JOB_FAILED)))
            .values(state=JOB_CANCELLED, last_error=reason, finished_at=utcnow(), lease_until=None, locked_by=None)
            .execution_options(synchronize_session="fetch")
        ),
    )
    return result.rowcount == 1

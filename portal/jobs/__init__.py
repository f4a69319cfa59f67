"""The outbox job runner: enqueue in the caller's transaction, claim, run, retry.

Services call `enqueue(...)` next to the change that needs device work and commit both
together; a worker (`flask --app wsgi worker`, or the thread inside `flask serve`)
claims due jobs, runs the handler of their kind outside any database lock, and retries
with capped exponential backoff and full jitter until done or given up.
"""
from portal.jobs.context import JobContext
from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.outbox import LINK_HOUSEHOLD, cancel, enqueue, enqueue_household_link, requeue
from portal.jobs.registry import handler, periodic
from portal.jobs.runner import drain, run_due_jobs

__all__ = [
    "LINK_HOUSEHOLD",
    "JobContext",
    "PermanentFailure",
    "RetryLater",
    "cancel",
    "drain",
    "enqueue",
    "enqueue_household_link",
    "handler",
    "periodic",
    "requeue",
    "run_due_jobs",
]

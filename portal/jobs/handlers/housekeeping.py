"""Periodic housekeeping in the worker."""
from portal.jobs.registry import periodic
from portal.services import housekeeping


@periodic("HOUSEKEEPING_SECONDS")
def prune_stale_rows(app) -> None:
    housekeeping.prune()

"""The PIN schedule in the worker: PINs past their end or last use come off their boxes, and
seed gateways' PINs come off and go back at the edges of their hours (portal.services.pins)."""
from datetime import datetime

from portal.jobs.registry import periodic
from portal.services import pins


@periodic("PIN_SCHEDULE_SECONDS")
def keep_pin_schedules(app, now: datetime | None = None) -> dict[str, int]:
    return pins.keep_schedules(now)

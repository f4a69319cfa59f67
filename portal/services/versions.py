"""Versions of the parts of pages that poll (a box page's live part and its events, the
activity feed): while one holds, a poll answers 304 without reading or drawing its part again.

A version is "<count>.<until>.<signature>": the household's change count
(portal/models/changes.py, moved by the database on every change a part shows) read before
the part's own rows, the second (Unix time) until which the part's words hold with nothing
stored having changed, and an HMAC (the app's secret key) over what the part was drawn for
(its name: household, page and arguments), the count, `until` and StreamIoT's state. So an
unchanged poll reads one narrow row; a version made for one part, household or key never
holds for another.

A gateway's heartbeat moves the household's `heartbeats` count and not its change count
(models/changes.py): only a part that shows when a gateway was last heard (a Part with
shows_heartbeats) follows it."""
import hashlib
import hmac
import math
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app

from portal.filters import timeago_turns
from portal.models import STREAMIOT, HouseholdChanges, PlatformHealth, utcnow
from portal.services.rows import read

# The count, with StreamIoT's state as deliveries.platform_waiting reads it (jobs/platform.py
# keeps it; no row yet: never seen down). Also read with who is asking (visitors.AtStart).
MARK_COLUMNS = (HouseholdChanges.count, HouseholdChanges.heartbeats, PlatformHealth.state, PlatformHealth.next_probe_at)
PLATFORM_ROW = PlatformHealth.name == STREAMIOT
_MARK = (
    sa.select(*MARK_COLUMNS)
    .outerjoin(PlatformHealth, PLATFORM_ROW)
    .where(HouseholdChanges.account_id == sa.bindparam("account_id"))
)


class Part(NamedTuple):
    """What a version is made for: the part's name (its household, page and arguments), and
    whether it shows when a gateway was last heard (its version then follows heartbeats)."""

    name: str
    shows_heartbeats: bool = False


class Mark(NamedTuple):
    """Where a household stands: its change count, its heartbeats count and StreamIoT's state."""

    changes: int
    heartbeats: int
    platform_state: str | None
    platform_next_try: datetime | None


def mark(account_id) -> Mark | None:
    """Read before the part's own rows, so a change that lands between them moves the count
    past what the version holds. None: no count (the part then always renders)."""
    row = read(_MARK, {"account_id": account_id}).first()
    return Mark(*row) if row is not None else None


def mark_of(values) -> Mark | None:
    """The Mark in MARK_COLUMNS' values, read through an outer join (None: no count yet)."""
    return Mark(*values) if values[0] is not None else None


def version(part: Part, mark: Mark | None, until: int) -> str | None:
    """The version of `part` drawn at `mark`, its words holding until `until`."""
    return _signed(part, mark, until) if mark is not None else None


def holds(part: Part, version: str, mark: Mark | None, now: datetime | None = None) -> bool:
    """Whether `part` drawn with `version` still shows what it would drawn now at `mark`."""
    try:
        _count, until_text, _signature = version.split(".")
        until = int(until_text)
    except ValueError:
        return False
    return mark is not None and (now or utcnow()).timestamp() < until and \
        hmac.compare_digest(_signed(part, mark, until), version)


def words_hold_until(now: datetime, shown: Iterable[datetime | None] = (),
                     moments: Iterable[datetime | None] = ()) -> int:
    """The second from which a part drawn at `now` may read differently: the next minute
    (a day or a PIN's weekly hours turn on the minute), sooner when a time `shown` in words
    ("3 minutes ago") turns or one of `moments` comes."""
    turns = [timeago_turns(t, now) for t in shown if t is not None]
    times = [t for t in (*turns, *moments) if t is not None and t > now]
    return min([(math.floor(now.timestamp()) // 60 + 1) * 60] + [math.floor(t.timestamp()) for t in times])


def _signed(part: Part, mark: Mark, until: int) -> str:
    heard = mark.heartbeats if part.shows_heartbeats else "-"
    facts = f"{part.name}|{mark.changes}|{heard}|{until}|{mark.platform_state}|{mark.platform_next_try}"
    signature = hmac.new(str(current_app.config["SECRET_KEY"]).encode(), facts.encode(), hashlib.sha256)
    return f"{mark.changes}.{until}.{signature.hexdigest()[:20]}"

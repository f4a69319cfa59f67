"""Alerts about what did NOT happen, found by looking (the worker, every ALERT_SCAN_SECONDS):
a box left open, a gateway that went quiet and came back, a PIN about to expire.

Each finding is raised once: the alerts already raised are the memory (a gateway's offline
alert newer than its last heartbeat means it was said). Each household's findings commit on
their own, so one scan never holds a write lock for long.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from portal import timezones
from portal.extensions import db
from portal.models import Account, ActivityEvent, Alert, Gateway, Mailbox, Pin, User, utcnow
from portal.models.devices import PIN_DURESS
from portal.services import alerts
from portal.services.deliveries import DeviceState, PinState

_OPENED = ("box.opened_pin", "box.opened_remote", "box.duress")


@dataclass
class Found:
    left_open: int = 0
    offline: int = 0
    online: int = 0
    expiring: int = 0


def scan(now: datetime | None = None) -> Found:
    now = now or utcnow()
    found = Found()
    config = current_app.config
    found.offline = _gateways_offline(now, timedelta(minutes=int(config["ALERT_OFFLINE_MINUTES"])))
    found.online = _gateways_back(now)
    found.left_open = _boxes_left_open(now, timedelta(minutes=int(config["ALERT_LEFT_OPEN_MINUTES"])))
    found.expiring = _pins_expiring(now, timedelta(hours=int(config["ALERT_PIN_EXPIRING_HOURS"])))
    return found


def _said(kind: str, *, gateway=None, mailbox=None, since=None):
    """An alert of `kind` for the gateway (or box) raised after `since`, as a SQL condition."""
    where = [Alert.kind == kind]
    if gateway is not None:
        where.append(Alert.gateway_id == gateway)
    if mailbox is not None:
        where.append(Alert.mailbox_id == mailbox)
    if since is not None:
        where.append(Alert.created_at >= since)
    return sa.exists(sa.select(Alert.id).where(*where))


def _local(account_id, moment: datetime) -> str:
    zone = db.session.scalar(sa.select(Account.time_zone).where(Account.id == account_id))
    return moment.astimezone(timezones.zone(zone)).strftime("%a %H:%M")


def _gateways_offline(now: datetime, after: timedelta) -> int:
    rows = db.session.execute(
        sa.select(Gateway.id, Gateway.account_id, Gateway.name, Gateway.last_heartbeat_at).where(
            Gateway.status == DeviceState.ACTIVE,
            Gateway.last_heartbeat_at.is_not(None),
            Gateway.last_heartbeat_at < now - after,
            ~_said("gateway_offline", gateway=Gateway.id, since=Gateway.last_heartbeat_at),
        )
    ).all()
    for row in rows:
        heard = _local(row.account_id, row.last_heartbeat_at)
        alerts.raise_alert(row.account_id, "gateway_offline", f"Gateway “{row.name}” is offline: last heard {heard}",
                           gateway_id=row.id, occurred_at=now)
        db.session.commit()
    return len(rows)


def _gateways_back(now: datetime) -> int:
    """Gateways heard from again since their last offline alert, which no online alert
    answered yet."""
    window = timedelta(seconds=float(current_app.config["HEARTBEAT_WINDOW_SECONDS"]))
    offline = sa.orm.aliased(Alert)
    back = sa.orm.aliased(Alert)
    rows = db.session.execute(
        sa.select(Gateway.id, Gateway.account_id, Gateway.name).where(
            Gateway.status == DeviceState.ACTIVE,
            Gateway.last_heartbeat_at >= now - window,
            sa.exists(sa.select(offline.id).where(
                offline.gateway_id == Gateway.id, offline.kind == "gateway_offline",
                offline.created_at <= Gateway.last_heartbeat_at,
                ~sa.exists(sa.select(back.id).where(back.gateway_id == Gateway.id, back.kind == "gateway_online",
                                                    back.created_at >= offline.created_at)),
            )),
        )
    ).all()
    for row in rows:
        alerts.raise_alert(row.account_id, "gateway_online", f"Gateway “{row.name}” is back online",
                           gateway_id=row.id, occurred_at=now)
        db.session.commit()
    return len(rows)


def _boxes_left_open(now: datetime, after: timedelta) -> int:
    """Open boxes of the kind that reports closing (it has closed before), opened longer
    ago than `after`, not yet alerted for this opening."""
    reports_closing = sa.exists(sa.select(ActivityEvent.id).where(
        ActivityEvent.mailbox_id == Mailbox.id, ActivityEvent.kind == "box.closed"))
    opened_at = (
        sa.select(sa.func.max(ActivityEvent.occurred_at))
        .where(ActivityEvent.mailbox_id == Mailbox.id, ActivityEvent.kind.in_(_OPENED))
        .scalar_subquery()
    )
    rows = db.session.execute(
        sa.select(Mailbox.id, Mailbox.account_id, Mailbox.gateway_id, Mailbox.name, opened_at.label("opened_at"))
        .where(Mailbox.status == DeviceState.ACTIVE, Mailbox.is_open.is_(True), reports_closing)
    ).all()
    raised = 0
    for row in rows:
        if row.opened_at is None or row.opened_at > now - after:
            continue
        if db.session.scalar(sa.select(_said("left_open", mailbox=row.id, since=row.opened_at))):
            continue
        minutes = int((now - row.opened_at).total_seconds() // 60)
        alerts.raise_alert(row.account_id, "left_open",
                           f"{row.name}: open for {minutes} minutes (since {_local(row.account_id, row.opened_at)})",
                           gateway_id=row.gateway_id, mailbox_id=row.id, occurred_at=now)
        db.session.commit()
        raised += 1
    return raised


def _pins_expiring(now: datetime, ahead: timedelta) -> int:
    """Household PINs (not courier codes, which are meant to be short) that end within
    `ahead`: one alert per PIN, naming it by its label and whose it is."""
    rows = db.session.execute(
        sa.select(Pin.id, Pin.account_id, Pin.mailbox_id, Pin.label, Pin.ends_at, Mailbox.name.label("box"),
                  Mailbox.gateway_id, User.display_name, User.email)
        .join(Mailbox, Mailbox.id == Pin.mailbox_id)
        .outerjoin(User, User.id == Pin.assigned_to_id)
        .where(Pin.ends_at.is_not(None), Pin.ends_at > now, Pin.ends_at <= now + ahead,
               Pin.status.in_((PinState.ACTIVE, PinState.ADDING, PinState.PAUSED, PinState.PAUSING)),
               Pin.ended.is_(None), Pin.purpose != "courier", Pin.purpose != PIN_DURESS)
    ).all()
    if not rows:
        return 0
    told = {
        (details or {}).get("pin_id")
        for details in db.session.scalars(
            sa.select(Alert.details).where(Alert.kind == "pin_expiring",
                                           Alert.mailbox_id.in_({r.mailbox_id for r in rows}))
        )
    }
    raised = 0
    for row in rows:
        if str(row.id) in told:
            continue
        whose = f" ({row.display_name or row.email}’s)" if row.email else ""
        alerts.raise_alert(row.account_id, "pin_expiring",
                           f"{row.box}: PIN “{row.label}”{whose} stops working {_local(row.account_id, row.ends_at)}",
                           gateway_id=row.gateway_id, mailbox_id=row.mailbox_id, occurred_at=now,
                           details={"pin_id": str(row.id)})
        db.session.commit()
        raised += 1
    return raised

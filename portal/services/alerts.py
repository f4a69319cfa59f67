"""Alerts (issue 13): what happened that members want to hear about, raised in the same
transaction as the event, and fanned out there to each member and channel they chose: the
bell at once, email and push as outbox jobs (held through quiet hours), webhooks as their
own deliveries. Preferences, quiet hours, the bell's list and one-click unsubscribe live here.

No alert ever carries PIN digits or keys: summaries are built from labels and names only.
"""
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from portal import timezones
from portal.extensions import db
from portal.jobs import outbox
from portal.models import (
    ALERT_KINDS,
    CHANNELS,
    TEST_KIND,
    Account,
    ActivityEvent,
    Alert,
    AlertPreference,
    Mailbox,
    Membership,
    Notification,
    Pin,
    PushSubscription,
    User,
    utcnow,
)
from portal.models.accounts import ROLE_OWNER
from portal.models.alerts import CHANNEL_EMAIL, CHANNEL_PORTAL, CHANNEL_PUSH
from portal.services import alert_payload, notifications, push, webhooks
from portal.services.errors import Forbidden, NotFound, ValidationFailed
from portal.services.rows import read
from portal.services.scope import get_scoped
from portal.services.visitors import HouseholdMember, MemberOf

ALERT_EMAIL = "alert.email"
ALERT_PUSH = "alert.push"

CHANNEL_WORDS = {CHANNEL_PORTAL: "In the portal", CHANNEL_EMAIL: "Email", CHANNEL_PUSH: "Push"}

# Kinds about one box (a member may choose them box by box); the others are household-wide.
BOX_KINDS = ("opened", "wrong_pins", "refused", "locked_out", "duress", "left_open", "battery_low",
             "parcel_delivered", "parcel_collected", "pin_expiring", "delivery_failed")
# Duress reaches owners only, on every channel, whatever they chose, even in quiet hours.
DURESS = "duress"

# What a member hears before anyone chose anything. Openings are the most frequent event, so
# they stay off until a member turns them on for the boxes they care about.
_ALL = frozenset(CHANNELS)
DEFAULT_CHANNELS: dict[str, frozenset[str]] = {
    "opened": frozenset(),
    "wrong_pins": _ALL,
    "refused": frozenset({CHANNEL_PORTAL}),
    "locked_out": _ALL,
    DURESS: _ALL,
    "left_open": frozenset({CHANNEL_PORTAL, CHANNEL_PUSH}),
    "gateway_offline": _ALL,
    "gateway_online": frozenset({CHANNEL_PORTAL, CHANNEL_PUSH}),
    "battery_low": frozenset({CHANNEL_PORTAL, CHANNEL_EMAIL}),
    "parcel_delivered": frozenset({CHANNEL_PORTAL, CHANNEL_PUSH}),
    "parcel_collected": frozenset({CHANNEL_PORTAL}),
    "pin_expiring": frozenset({CHANNEL_PORTAL}),
    "delivery_failed": frozenset({CHANNEL_PORTAL, CHANNEL_EMAIL}),
    "member_joined": frozenset({CHANNEL_PORTAL, CHANNEL_EMAIL}),
    "member_left": frozenset({CHANNEL_PORTAL, CHANNEL_EMAIL}),
    "support_visit": frozenset({CHANNEL_PORTAL, CHANNEL_EMAIL}),
}

# Activity kinds that are alerts as they are (box.rejected and box.battery are judged below).
_FROM_ACTIVITY = {
    "box.opened_pin": "opened",
    "box.opened_remote": "opened",
    "box.refused": "refused",
    "box.lockout": "locked_out",
    "box.duress": DURESS,
    "box.parcel_delivered": "parcel_delivered",
    "box.parcel_collected": "parcel_collected",
    "delivery.failed": "delivery_failed",
    "member.joined": "member_joined",
    "member.left": "member_left",
    "member.removed": "member_left",
    "support.viewed": "support_visit",
}
_UNSUBSCRIBE_SALT = "alerts-unsubscribe"
PER_PAGE = 30


# --- raising --------------------------------------------------------------------------------

def on_activity(event: ActivityEvent) -> Alert | None:
    """The alert an activity event raises, if any, fanned out in the caller's transaction
    (portal/services/activity.py calls this for every event it records)."""
    kind = _FROM_ACTIVITY.get(event.kind)
    if event.kind == "box.rejected" and _wrong_pin_burst(event):
        kind = "wrong_pins"
    elif event.kind == "box.battery" and (event.details or {}).get("low"):
        kind = "battery_low"
    if kind is None:
        return None
    return raise_alert(
        event.account_id, kind, _summary(kind, event),
        gateway_id=event.gateway_id, mailbox_id=event.mailbox_id, occurred_at=event.occurred_at,
        details={"activity": event.kind}, skip_user_id=event.actor_user_id,
    )


def raise_alert(account_id: uuid.UUID, kind: str, summary: str, *, gateway_id: uuid.UUID | None = None,
                mailbox_id: uuid.UUID | None = None, occurred_at: datetime | None = None,
                details: dict | None = None, skip_user_id: uuid.UUID | None = None) -> Alert:
    """Record an alert and fan it out, in the caller's transaction (no commit). `skip_user_id`:
    the member whose own action it was hears nothing of it."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    now = utcnow()
    alert = Alert(id=uuid.uuid4(), account_id=account_id, kind=kind, gateway_id=gateway_id, mailbox_id=mailbox_id,
                  summary=summary[:500], details=details or {}, occurred_at=occurred_at or now, created_at=now)
    db.session.add(alert)
    _fan_out(alert, skip_user_id)
    webhooks.fan_out(alert)
    return alert


def _summary(kind: str, event: ActivityEvent) -> str:
    box = db.session.get(Mailbox, event.mailbox_id) if event.mailbox_id else None
    text = event.summary
    if event.kind == "box.opened_remote" and box is not None:
        who = _unlock_requester(box.id, event.occurred_at)
        text = f"Opened remotely by {who}" if who else text
    elif kind == "opened":
        owner = _pin_owner((event.details or {}).get("pin_id"))
        text = f"{text} ({owner}’s PIN)" if owner else text
    elif kind == "wrong_pins":
        text = "Several wrong PINs were entered"
    return f"{box.name}: {text}" if box is not None else text


def _unlock_requester(mailbox_id: uuid.UUID, at: datetime) -> str | None:
    return db.session.scalar(
        sa.select(ActivityEvent.actor_label)
        .where(ActivityEvent.mailbox_id == mailbox_id, ActivityEvent.kind == "unlock.requested",
               ActivityEvent.occurred_at >= at - timedelta(minutes=5))
        .order_by(ActivityEvent.occurred_at.desc()).limit(1)
    )


def _pin_owner(pin_id: str | None) -> str | None:
    if not pin_id:
        return None
    row = db.session.execute(
        sa.select(User.display_name, User.email).join(Pin, Pin.assigned_to_id == User.id)
        .where(Pin.id == uuid.UUID(pin_id))
    ).first()
    return (row.display_name or row.email) if row else None


def _wrong_pin_burst(event: ActivityEvent) -> bool:
    """ALERT_WRONG_PINS wrong PINs on the box within ALERT_WRONG_PIN_MINUTES, and no burst
    alerted for it in that time: a burst alerts once, not on every wrong PIN."""
    details = event.details or {}
    if details.get("reason") or event.mailbox_id is None:
        return False  # refused while locked out: the lockout alert said it
    config = current_app.config
    since = event.occurred_at - timedelta(minutes=int(config["ALERT_WRONG_PIN_MINUTES"]))
    with db.session.no_autoflush:
        earlier = db.session.scalar(
            sa.select(sa.func.count()).select_from(ActivityEvent)
            .where(ActivityEvent.mailbox_id == event.mailbox_id, ActivityEvent.kind == "box.rejected",
                   ActivityEvent.occurred_at >= since, ActivityEvent.id.is_not(None))
        ) or 0
        attempts: int = details["attempts"] if isinstance(details.get("attempts"), int) else 1
        if max(earlier + 1, attempts) < int(config["ALERT_WRONG_PINS"]):
            return False
        return not recently_alerted("wrong_pins", since, mailbox_id=event.mailbox_id)


def recently_alerted(kind: str, since: datetime, *, mailbox_id=None, gateway_id=None) -> bool:
    """Whether an alert of `kind` for this box or gateway was raised since `since`, saved or
    still in this transaction."""
    for row in db.session.new:
        if (isinstance(row, Alert) and row.kind == kind and row.mailbox_id == mailbox_id
                and row.gateway_id == (gateway_id or row.gateway_id)):
            return True
    where = [Alert.kind == kind, Alert.created_at >= since]
    if mailbox_id is not None:
        where.append(Alert.mailbox_id == mailbox_id)
    if gateway_id is not None:
        where.append(Alert.gateway_id == gateway_id)
    return db.session.scalar(sa.select(Alert.id).where(*where).limit(1)) is not None


# --- fan-out --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Member:
    user_id: uuid.UUID
    is_owner: bool
    quiet_from: str | None
    quiet_until: str | None


def _fan_out(alert: Alert, skip_user_id: uuid.UUID | None) -> None:
    members = [
        _Member(row.user_id, row.role == ROLE_OWNER, row.quiet_from, row.quiet_until)
        for row in db.session.execute(
            sa.select(Membership.user_id, Membership.role, Membership.quiet_from, Membership.quiet_until)
            .where(Membership.account_id == alert.account_id)
        )
    ]
    if not members:
        return
    choices = _choices(alert.account_id, alert.kind, alert.mailbox_id)
    with_push = _push_users([m.user_id for m in members])
    zone = timezones.zone(db.session.scalar(sa.select(Account.time_zone).where(Account.id == alert.account_id)))
    now = utcnow()
    for member in members:
        if member.user_id == skip_user_id or (alert.kind == DURESS and not member.is_owner):
            continue
        for channel in CHANNELS:
            if not _wants(choices, member, alert.kind, alert.mailbox_id, channel):
                continue
            if channel == CHANNEL_PUSH and member.user_id not in with_push:
                continue
            _deliver(alert, member, channel, zone, now)


def _deliver(alert: Alert, member: _Member, channel: str, zone, now: datetime) -> Notification:
    if channel == CHANNEL_PORTAL:
        return notifications.new(alert.id, alert.account_id, member.user_id, channel, sent=True)
    hold = None if alert.kind == DURESS else quiet_until(member.quiet_from, member.quiet_until, zone, now)
    row = notifications.new(alert.id, alert.account_id, member.user_id, channel, hold_until=hold)
    outbox.enqueue(
        ALERT_EMAIL if channel == CHANNEL_EMAIL else ALERT_PUSH,
        {"notification_id": str(row.id)},
        account_id=alert.account_id,
        # One target per notification: a slow mail server never holds back another alert.
        target=f"notification:{row.id}",
        run_after=hold,
        max_attempts=int(current_app.config["ALERT_MAX_ATTEMPTS"]),
    )
    return row


def _push_users(user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not push.enabled():
        return set()
    return set(db.session.scalars(
        sa.select(PushSubscription.user_id).where(PushSubscription.user_id.in_(user_ids)).distinct()
    ))


Choices = dict[tuple[uuid.UUID | None, uuid.UUID | None, str], bool]


def _choices(account_id: uuid.UUID, kind: str, mailbox_id: uuid.UUID | None) -> Choices:
    """(user_id or None for the household, mailbox_id or None for all boxes, channel) -> on."""
    boxes: list[sa.ColumnElement[bool]] = [AlertPreference.mailbox_id.is_(None)]
    if mailbox_id is not None:
        boxes.append(AlertPreference.mailbox_id == mailbox_id)
    return {
        (row.user_id, row.mailbox_id, row.channel): row.enabled
        for row in db.session.scalars(
            sa.select(AlertPreference).where(AlertPreference.account_id == account_id,
                                             AlertPreference.kind == kind, sa.or_(*boxes))
        )
    }


def _wants(choices: Choices, member: _Member, kind: str, mailbox_id: uuid.UUID | None, channel: str) -> bool:
    """The member's choice for this box, else theirs for all boxes, else the household's,
    else the built-in default. Duress: always, for owners."""
    if kind == DURESS:
        return member.is_owner
    keys = [(member.user_id, mailbox_id)] if mailbox_id is not None else []
    for user_id, box_id in [*keys, (member.user_id, None), (None, None)]:
        chosen = choices.get((user_id, box_id, channel))
        if chosen is not None:
            return chosen
    return channel in DEFAULT_CHANNELS[kind]


# --- quiet hours ----------------------------------------------------------------------------

def parse_clock(text: str | None, field: str) -> str | None:
    """"HH:MM" (24 h) or None for blank; ValidationFailed on `field` otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = time.fromisoformat(text)
    except ValueError:
        raise ValidationFailed("Enter a time like 22:00.", field=field) from None
    return value.strftime("%H:%M")


def quiet_until(quiet_from: str | None, quiet_to: str | None, zone, now: datetime) -> datetime | None:
    """When the member's quiet hours end, if `now` falls inside them; None otherwise."""
    if not quiet_from or not quiet_to or quiet_from == quiet_to:
        return None
    local = now.astimezone(zone)
    start, end = time.fromisoformat(quiet_from), time.fromisoformat(quiet_to)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        day = local.date()
    else:  # over midnight: 22:00-07:00
        inside = clock >= start or clock < end
        day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(day, end, tzinfo=zone).astimezone(now.tzinfo)


def set_quiet_hours(membership: Membership, quiet_from: str | None, quiet_to: str | None) -> None:
    start = parse_clock(quiet_from, "quiet_from")
    end = parse_clock(quiet_to, "quiet_until")
    if (start is None) != (end is None):
        field = "quiet_until" if end is None else "quiet_from"
        raise ValidationFailed("Give both times, or leave both empty for no quiet hours.", field=field)
    if start is not None and start == end:
        raise ValidationFailed("Quiet hours must end at another time than they start.", field="quiet_until")
    db.session.execute(
        sa.update(Membership).where(Membership.id == membership.id).values(quiet_from=start, quiet_until=end)
        .execution_options(synchronize_session="fetch")
    )
    db.session.commit()


# --- preferences ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    kind: str
    words: str
    channels: dict[str, bool]
    locked: bool  # duress for owners: always on


def kinds_for(mailbox_id, *, owner: bool) -> list[str]:
    kinds = list(BOX_KINDS if mailbox_id is not None else ALERT_KINDS)
    return [k for k in kinds if owner or k != DURESS]


def preference_rows(membership: Membership, mailbox_id=None, *, household: bool = False) -> list[Row]:
    """The matrix a settings page shows: for each kind, each channel on or off as it would be
    decided now, for the member (or, `household`, the household's defaults), for all boxes or
    one box."""
    account_id = membership.account_id
    if mailbox_id is not None:
        mailbox_id = get_scoped(Mailbox, account_id, mailbox_id).id
    user_id = None if household else membership.user_id
    prefs = db.session.scalars(
        sa.select(AlertPreference).where(
            AlertPreference.account_id == account_id,
            sa.or_(AlertPreference.user_id.is_(None), AlertPreference.user_id == membership.user_id),
        )
    ).all()
    member = _Member(user_id, membership.is_owner and not household, None, None)  # type: ignore[arg-type]
    rows = []
    for kind in kinds_for(mailbox_id, owner=membership.is_owner or household):
        choices: Choices = {
            (p.user_id, p.mailbox_id, p.channel): p.enabled
            for p in prefs if p.kind == kind and (p.mailbox_id is None or p.mailbox_id == mailbox_id)
            and (p.user_id == user_id or p.user_id is None)
        }
        rows.append(Row(kind, ALERT_KINDS[kind],
                        {c: _wants(choices, member, kind, mailbox_id, c) if kind != DURESS else True for c in CHANNELS},
                        locked=kind == DURESS))
    return rows


def check_choices(membership: Membership, chosen: dict[str, list[str]], mailbox_id=None, *,
                  household: bool = False) -> set[tuple[str, str]]:
    """The (kind, channel) pairs of a matrix sent as {kind: [channels on]} (the API's form of
    it), refused on the field "choices" when it names a kind this matrix does not offer or
    tries to turn off duress, which always reaches owners on every channel."""
    offered = kinds_for(mailbox_id, owner=membership.is_owner or household)
    pairs: set[tuple[str, str]] = set()
    for kind, channels in chosen.items():
        if kind not in offered:
            where = "one box" if mailbox_id is not None else "all boxes"
            raise ValidationFailed(f"“{kind}” is not an alert a member can choose for {where} "
                                   f"here; choose among: {', '.join(offered)}.", field="choices")
        if kind == DURESS and set(channels) != set(CHANNELS):
            raise ValidationFailed("Duress alerts always reach owners on every channel; they can’t be turned off.",
                                   field="choices")
        pairs.update((kind, channel) for channel in channels if kind != DURESS)
    return pairs


def save_preferences(membership: Membership, chosen: set[tuple[str, str]], mailbox_id=None, *,
                     household: bool = False) -> None:
    """Store the matrix a member (or an owner, for the household's defaults) ticked:
    `chosen` holds the (kind, channel) pairs that are on; every pair shown is stored, so the
    page reads back exactly what was saved. Commits."""
    if household and not membership.is_owner:
        raise Forbidden("Only owners can set the household’s alert defaults.")
    if household and mailbox_id is not None:
        raise ValidationFailed("Household defaults are for all boxes.", field="box")
    account_id = membership.account_id
    if mailbox_id is not None:
        mailbox_id = get_scoped(Mailbox, account_id, mailbox_id).id
    user_id = None if household else membership.user_id
    kinds = [k for k in kinds_for(mailbox_id, owner=True) if k != DURESS]
    owner_match = AlertPreference.user_id.is_(None) if user_id is None else AlertPreference.user_id == user_id
    box_match = AlertPreference.mailbox_id.is_(None) if mailbox_id is None else AlertPreference.mailbox_id == mailbox_id
    db.session.execute(sa.delete(AlertPreference).where(
        AlertPreference.account_id == account_id, owner_match, box_match, AlertPreference.kind.in_(kinds)))
    now = utcnow()
    for kind in kinds:
        for channel in CHANNELS:
            db.session.add(AlertPreference(account_id=account_id, user_id=user_id, kind=kind, mailbox_id=mailbox_id,
                                           channel=channel, enabled=(kind, channel) in chosen, updated_at=now))
    db.session.commit()


def forget_box_choices(membership: Membership, mailbox_id) -> None:
    """The member's choices for one box go: it follows their choices for all boxes again."""
    mailbox = get_scoped(Mailbox, membership.account_id, mailbox_id)
    db.session.execute(sa.delete(AlertPreference).where(
        AlertPreference.account_id == membership.account_id, AlertPreference.user_id == membership.user_id,
        AlertPreference.mailbox_id == mailbox.id))
    db.session.commit()


def box_choices(account_id: uuid.UUID) -> list[sa.Row]:
    """The household's boxes a member can choose alerts for: (id, name), by name."""
    return list(db.session.execute(
        sa.select(Mailbox.id, Mailbox.name).where(Mailbox.account_id == account_id).order_by(Mailbox.name, Mailbox.id)
    ).all())


def boxes_with_own_choices(membership: Membership) -> set[uuid.UUID]:
    return set(db.session.scalars(
        sa.select(AlertPreference.mailbox_id).where(
            AlertPreference.account_id == membership.account_id, AlertPreference.user_id == membership.user_id,
            AlertPreference.mailbox_id.is_not(None)).distinct()
    ))


# --- unsubscribe ----------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_UNSUBSCRIBE_SALT)


def unsubscribe_token(user_id: uuid.UUID, account_id: uuid.UUID, kind: str) -> str:
    return str(_serializer().dumps([str(user_id), str(account_id), kind]))


@dataclass(frozen=True)
class Unsubscribe:
    user_id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    household: str
    words: str


def read_unsubscribe(token: str) -> Unsubscribe:
    """What a one-click unsubscribe link stops; NotFound when it is not ours or the member
    has left the household."""
    try:
        user, account, kind = _serializer().loads(token)
        user_id, account_id = uuid.UUID(user), uuid.UUID(account)
    except (BadSignature, ValueError, TypeError):
        raise NotFound("This unsubscribe link is not valid.") from None
    if kind not in ALERT_KINDS:
        raise NotFound("This unsubscribe link is not valid.")
    household = db.session.scalar(
        sa.select(Account.name).join(Membership, Membership.account_id == Account.id)
        .where(Membership.user_id == user_id, Membership.account_id == account_id)
    )
    if household is None:
        raise NotFound("You are no longer a member of this household.")
    return Unsubscribe(user_id, account_id, kind, household, ALERT_KINDS[kind])


def unsubscribe(token: str) -> Unsubscribe:
    """Turn off emails of the link's kind, for every box, for its member (RFC 8058 one-click:
    the same answer however often it is posted). Commits."""
    found = read_unsubscribe(token)
    where = (AlertPreference.account_id == found.account_id, AlertPreference.user_id == found.user_id,
             AlertPreference.kind == found.kind, AlertPreference.channel == CHANNEL_EMAIL)
    db.session.execute(sa.delete(AlertPreference).where(*where))
    db.session.add(AlertPreference(account_id=found.account_id, user_id=found.user_id, kind=found.kind,
                                   mailbox_id=None, channel=CHANNEL_EMAIL, enabled=False, updated_at=utcnow()))
    db.session.commit()
    return found


# --- sending (the jobs of portal/jobs/handlers/alerts.py and push.py) ---------------------

class Skip(Exception):
    """Nothing to send any more: the member left, or turned this off since."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    message_id: str


def still_wanted(notification: Notification, alert: Alert) -> None:
    """Raise Skip when the notification's member left, or turned its kind off on its
    channel since it was queued (an unsubscribe holds for what is already on its way)."""
    row = db.session.execute(
        sa.select(Membership.user_id, Membership.role, Membership.quiet_from, Membership.quiet_until)
        .where(Membership.account_id == notification.account_id, Membership.user_id == notification.user_id)
    ).first()
    if row is None:
        raise Skip("The member left the household")
    if alert.kind == TEST_KIND:
        return
    member = _Member(row.user_id, row.role == ROLE_OWNER, row.quiet_from, row.quiet_until)
    if not _wants(_choices(alert.account_id, alert.kind, alert.mailbox_id), member, alert.kind, alert.mailbox_id,
                  notification.channel):
        raise Skip("The member turned these alerts off")


def email_for(notification: Notification) -> tuple[Alert, Email]:
    """The email of an alert notification, text and HTML, with its one-click unsubscribe."""
    alert = db.session.get(Alert, notification.alert_id)
    if alert is None:
        raise Skip("The alert no longer exists")
    still_wanted(notification, alert)
    user = db.session.get(User, notification.user_id)
    if user is None:
        raise Skip("The member no longer exists")
    fields = alert_payload.payload(alert)
    zone_name = db.session.scalar(sa.select(Account.time_zone).where(Account.id == alert.account_id))
    when = alert.occurred_at.astimezone(timezones.zone(zone_name)).strftime("%a %d %b %Y, %H:%M")
    headers: dict[str, str] = {}
    unsubscribe_link = None
    if alert.kind in ALERT_KINDS:
        unsubscribe_link = alert_payload.link(
            "alerts.unsubscribe", token=unsubscribe_token(user.id, alert.account_id, alert.kind))
        headers = {"List-Unsubscribe": f"<{unsubscribe_link}>",
                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    context = {"alert": fields, "when": when, "zone": zone_name, "words": ALERT_KINDS.get(alert.kind, "A test"),
               "unsubscribe": unsubscribe_link, "settings": alert_payload.link("alerts.settings")}
    text = current_app.jinja_env.get_template("alerts/email.txt").render(context)
    html = current_app.jinja_env.get_template("alerts/email.html").render(context)
    subject = f"IoTLock: {alert.summary}"
    return alert, Email(user.email, subject[:200], text, html, headers, f"<{notification.id}@iotlock>")


# --- the bell and the list ------------------------------------------------------------------

def _mine(membership: MemberOf):
    return (Notification.user_id == membership.user_id, Notification.account_id == membership.account_id,
            Notification.channel == CHANNEL_PORTAL)


# Every household page shows the bell: its statement is built once.
_UNREAD = (
    sa.select(sa.func.count()).select_from(Notification)
    .where(*Notification.unread_in_bell(sa.bindparam("user_id"), sa.bindparam("account_id")))
)


def unread_count(membership: MemberOf) -> int:
    """The member's unread alerts: as read with the login when the request only reads
    (visitors.AtStart), else counted now."""
    if isinstance(membership, HouseholdMember) and membership.at_start is not None:
        return membership.at_start.unread
    return read(_UNREAD, {"user_id": membership.user_id, "account_id": membership.account_id}).scalar() or 0


@dataclass(frozen=True)
class Listed:
    id: uuid.UUID
    kind: str
    summary: str
    occurred_at: datetime
    mailbox_id: uuid.UUID | None
    unread: bool


def list_alerts(membership: MemberOf, page: int = 1) -> tuple[list[Listed], bool]:
    """The member's bell, newest first: a page of alerts and whether another page follows."""
    page = max(1, page)
    rows = db.session.execute(
        sa.select(Notification.id, Alert.kind, Alert.summary, Alert.occurred_at, Alert.mailbox_id, Notification.read_at)
        .join(Alert, Alert.id == Notification.alert_id)
        .where(*_mine(membership))
        .order_by(Alert.occurred_at.desc(), Notification.id)
        .offset((page - 1) * PER_PAGE).limit(PER_PAGE + 1)
    ).all()
    listed = [Listed(r.id, r.kind, r.summary, r.occurred_at, r.mailbox_id, r.read_at is None) for r in rows[:PER_PAGE]]
    return listed, len(rows) > PER_PAGE


def mark_read(membership: MemberOf, notification_id=None) -> int:
    """Mark one of the member's alerts read (or all, without an id); how many changed. Commits."""
    mine = list(_mine(membership))
    if notification_id is not None:
        try:
            mine.append(Notification.id == uuid.UUID(str(notification_id)))
        except ValueError:
            raise NotFound("No such alert.") from None
        if db.session.scalar(sa.select(Notification.id).where(*mine)) is None:
            raise NotFound("No such alert.")
    result = db.session.execute(sa.update(Notification).where(*mine, Notification.read_at.is_(None))
                                .values(read_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


# --- a test alert ---------------------------------------------------------------------------

def send_test(membership: Membership, channel: str) -> Notification:
    """A test alert to the member alone on one channel (never to webhooks). Commits."""
    if channel not in CHANNELS:
        raise ValidationFailed("Choose where to send the test.", field="channel")
    if channel == CHANNEL_PUSH and not _push_users([membership.user_id]):
        raise ValidationFailed("Turn on alerts on this device first: no browser of yours takes push alerts yet.",
                               field="channel")
    alert = Alert(id=uuid.uuid4(), account_id=membership.account_id, kind=TEST_KIND,
                  summary="This is a test alert: your alerts reach you here.", details={}, occurred_at=utcnow(),
                  created_at=utcnow())
    db.session.add(alert)
    member = _Member(membership.user_id, membership.is_owner, None, None)
    zone = timezones.zone(None)
    row = _deliver(alert, member, channel, zone, utcnow())
    db.session.commit()
    return row

"""A household with everything in it, for tests that look at every page: 3 gateways (one
online, one whose set-up failed, one being removed), 10 boxes of every kind and state, PINs
in every state with 60-character labels without spaces, changes queued with reasons,
unlocks, and activity of every kind. Rows are made directly (no device service involved).
"""
import uuid
from datetime import timedelta
from types import SimpleNamespace

from portal import crypto
from portal.extensions import db
from portal.models import Command, Gateway, Mailbox, Membership, Pin, utcnow
from portal.models.accounts import ROLE_MEMBER
from portal.services import accounts, activity

LONG = "Grandmother" * 5 + "Annelieses"  # 65 → cut to 60 below: no spaces, nothing to break at
LONG_LABEL = LONG[:60]
LONG_BOX = ("Parcelbox" * 7)[:60]
LONG_GATEWAY = ("Basementgateway" * 4)[:60]
OWNER_EMAIL = "olga@example.com"
MEMBER_EMAIL = "ben@example.com"

# (pin status, command action, command state, reason)
PIN_STATES = [
    ("active", "AUTH", "confirmed", None),
    ("adding", "AUTH", "queued", None),
    ("adding", "AUTH", "sent", None),
    ("adding", "AUTH", "failed", "The box has no free PIN slot."),
    ("removing", "UNAUTH", "sent", None),
    ("removing", "UNAUTH", "failed", "The box did not answer in time."),
]

# (kind, summary, actor kind)
EVENTS = [
    ("box.opened_pin", "Opened with PIN “{label}”", "box"),
    ("box.closed", "Closed", "box"),
    ("box.battery", "Battery low: 15%", "box"),
    ("box.wrong_pin", "Wrong PIN entered", "box"),
    ("box.opened_remote", "Opened remotely", "box"),
    ("unlock.requested", "Asked to open “{box}”", "member"),
    ("pin.added", "Added the PIN “{label}”", "member"),
    ("pin.removed", "Removed the PIN “{label}”", "member"),
    ("pin.shown", "Looked at the PIN “{label}”", "member"),
    ("delivery.failed", "Adding PIN “{label}” was refused by the box: The box has no free PIN slot.", "box"),
    ("mailbox.added", "Added the box “{box}”", "member"),
    ("mailbox.renamed", "Renamed a box to “{box}”", "member"),
    ("gateway.added", "Added the gateway “{gateway}”", "member"),
    ("gateway.settings_viewed", "Downloaded the settings of “{gateway}”", "member"),
    ("member.invited", "Invited someone@example.com", "member"),
    ("member.joined", "ben@example.com joined the household", "member"),
    ("support.viewed", "Support looked at the household’s devices", "support"),
]

BOX_LAYOUT = [  # (gateway index, name, kind, status, door, battery, progress done)
    (0, LONG_BOX, "parcel_box", "active", False, 100, True),
    (0, "Front mailbox", "mailbox", "active", True, 87, True),
    (0, "Gun safe", "gun_safe", "active", False, 12, True),
    (0, "Back gate", "mailbox", "provisioning", None, None, False),
    (0, "Garage parcels", "parcel_box", "failed", None, None, False),
    (0, "Old letterbox", "mailbox", "removing", False, 50, True),
    (0, "Side door", "mailbox", "active", None, None, True),
    (1, "Cellar safe", "gun_safe", "provisioning", None, None, False),
    (2, "Shed box", "parcel_box", "removing", False, 40, True),
    (0, "Studio mailbox", "mailbox", "active", False, 64, True),
]


def _key() -> str:
    return crypto.generate_keypair()[0]


def build_showcase(account_name: str = "Lindenweg 7") -> SimpleNamespace:
    """Make the household; returns ids of what the pages need (owner, gateways, boxes, PINs)."""
    owner, account = accounts.register(OWNER_EMAIL, "correct horse battery staple", account_name)
    member = accounts.register_user(MEMBER_EMAIL, "correct horse battery staple")
    db.session.add(Membership(account_id=account.id, user_id=member.id, role=ROLE_MEMBER))
    account.link_state = "connected"
    now = utcnow()
    full_setup = {k: True for k in ("thing", "channel", "connect", "key", "connect_sent", "register_sent")}
    gateways = [
        Gateway(id=uuid.uuid4(), account_id=account.id, name=LONG_GATEWAY, public_key=_key(), status="active",
                thing_id=str(uuid.uuid4()), channel_id=str(uuid.uuid4()), progress=full_setup,
                last_heartbeat_at=now),
        Gateway(id=uuid.uuid4(), account_id=account.id, name="Attic gateway", public_key=_key(), status="failed",
                thing_id=str(uuid.uuid4()), channel_id=str(uuid.uuid4()),
                progress={"thing": True, "channel": True, "connect": True, "key": True},
                # As the worker records it: the platform's own words (pages must translate them).
                last_error="StreamIoT answered POST /things/ab12 with 500: the thing's channel is gone "
                           "(gave up after 12 attempts)"),
        Gateway(id=uuid.uuid4(), account_id=account.id, name="Shed gateway", public_key=_key(), status="removing",
                thing_id=str(uuid.uuid4()), channel_id=str(uuid.uuid4()),
                progress={**full_setup, "destruct_sent": True}, last_heartbeat_at=now - timedelta(hours=3)),
    ]
    db.session.add_all(gateways)
    db.session.flush()
    for action, state, reason in (("CONNECT", "confirmed", None), ("REGISTER", "confirmed", None)):
        db.session.add(Command(account_id=account.id, gateway_id=gateways[0].id, action=action,
                               channel_key="gateway", state=state, reason=reason))
    db.session.add(Command(account_id=account.id, gateway_id=gateways[1].id, action="CONNECT", channel_key="gateway",
                           state="failed", reason="StreamIoT refused CONNECT on channel x: 409"))
    db.session.add(Command(account_id=account.id, gateway_id=gateways[2].id, action="DESTRUCT",
                           channel_key="gateway", state="sent"))
    boxes, pins = [], []
    box_done = {k: True for k in ("channel", "connect", "add_sent", "mailbox_sent", "mailbox_confirmed")}
    for index, (g, name, kind, status, door, battery, done) in enumerate(BOX_LAYOUT):
        gateway = gateways[g]
        box = Mailbox(id=uuid.uuid4(), account_id=account.id, gateway_id=gateway.id, name=name, kind=kind,
                      public_key=_key(), status=status, channel_id=str(uuid.uuid4()),
                      progress=box_done if done else {"channel": True, "connect": True},
                      is_open=door, battery_percent=battery, battery_at=now if battery is not None else None,
                      last_event_at=now - timedelta(minutes=index) if door is not None else None,
                      last_error="The gateway refused the box’s key." if status == "failed" else None)
        db.session.add(box)
        db.session.flush()
        boxes.append(box)
        if status == "failed":
            db.session.add(Command(account_id=account.id, gateway_id=gateway.id, mailbox_id=box.id, action="ADD",
                                   channel_key="mailbox", state="failed", reason="The gateway refused the box’s key."))
        if status == "removing":
            db.session.add(Command(account_id=account.id, gateway_id=gateway.id, mailbox_id=box.id, action="DELETE",
                                   channel_key="mailbox", state="queued"))
        if index in (0, 1, 3):  # PINs in every state, the first box's labels 60 characters long
            for p, (pin_status, action, state, reason) in enumerate(PIN_STATES):
                label = LONG_LABEL if index == 0 else f"Person {p}"
                if index == 0 and p:
                    label = (str(p) + LONG_LABEL)[:60]
                pin_id, command_id, digits = uuid.uuid4(), uuid.uuid4(), str(482100 + 7 * p + index)
                db.session.add(Pin(id=pin_id, account_id=account.id, mailbox_id=box.id, label=label,
                                   digits_enc=crypto.encrypt(digits, table="pins", column="digits_enc", row_id=pin_id),
                                   digits_digest=crypto.keyed_digest("pin", f"{box.id}:{digits}"),
                                   status=pin_status, command_id=command_id))
                db.session.flush()
                db.session.add(Command(id=command_id, account_id=account.id, gateway_id=gateway.id, mailbox_id=box.id,
                                       pin_id=pin_id, action=action, channel_key="mailbox", state=state,
                                       reason=reason))
                pins.append(pin_id)
        if status == "active":
            for state, reason in (("confirmed", None), ("expired", "Not answered in time"), ("queued", None)):
                db.session.add(Command(account_id=account.id, gateway_id=gateway.id, mailbox_id=box.id,
                                       action="UNLOCK", channel_key="mailbox", state=state, reason=reason,
                                       expires_at=now + timedelta(seconds=30)))
        for e, (kind_, summary, actor_kind) in enumerate(EVENTS if index < 2 else EVENTS[:3]):
            activity.record(
                account.id, kind=kind_, summary=summary.format(label=LONG_LABEL, box=name, gateway=gateway.name),
                actor_kind=actor_kind, actor_label=name if actor_kind == "box" else (
                    "Support" if actor_kind == "support" else OWNER_EMAIL),
                gateway_id=gateway.id, mailbox_id=box.id, occurred_at=now - timedelta(minutes=e + 1),
            )
    db.session.commit()
    return SimpleNamespace(account_id=account.id, owner_email=OWNER_EMAIL, gateways=[g.id for g in gateways],
                           boxes=[b.id for b in boxes], pins=pins)

"""The 10,000-household data set (issue 15): households, members, gateways, boxes, PINs,
their commands, reader cursors and 90 days of activity, written straight into a PostgreSQL
database of its own with COPY (benchmarks/scale.py measures on it).

Sizes follow the issue per household: 3 boxes, 15 PINs and 100 activity rows on average
(30,000 / 150,000 / 1,000,000 at 10,000 households), with an alert per 20 rows on every
member's bell, spread unevenly (1-5 gateways, users
in 1 or 2 households, a long tail of busy households). Household 0 is the *probe*, the one
the pages are measured as: its shape is fixed, so it is the same household in a database
of 1 as in one of 10,000. Every secret is a valid ciphertext of its own row (portal/crypto.py),
so the portal and the worker read the rows as they read their own.
"""
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from portal import crypto
from portal.services.deliveries import new_pin_ref

# Bump when the rows change: a database made by another version is made anew.
VERSION = "4"
BOXES_PER_HOUSEHOLD = 3
PINS_PER_HOUSEHOLD = 15
EVENTS_PER_HOUSEHOLD = 100
# Alerts raised per activity row (each on every member's bell).
ALERT_SHARE = 0.05
DAYS = 90

# The probe: 2 gateways (4 + 2 boxes, 5 PINs each), 3 members, 3,000 events (deep pages).
PROBE_GATEWAYS = (4, 2)
PROBE_PINS_PER_BOX = 5
PROBE_EVENTS = 3000
PROBE_EMAIL = "probe.owner@scale.example"
PROBE_BOX = "Quillfeather post box"

GATEWAY_COUNTS = [1, 2, 3, 4, 5]
GATEWAY_WEIGHTS = [50, 25, 13, 7, 5]
BOX_NAMES = ["Front door", "Mailbox", "Parcel box", "Garage", "Back gate", "Side door", "Letterbox", "Shed",
             "Gun safe", "Cellar", "Porch", "Office"]
GATEWAY_NAMES = ["Hallway", "Porch hub", "Garage hub", "Kitchen", "Upstairs", "Basement"]
STREETS = ["Birch", "Elm", "Linden", "Maple", "Oak", "Rowan", "Willow", "Cedar", "Aspen", "Hazel", "Juniper", "Alder"]
FIRST = ["anna", "ben", "carla", "dev", "emma", "farid", "greta", "hugo", "ines", "jon", "kim", "lena", "marco",
         "nora", "olga", "piet", "quinn", "rosa", "sami", "tara", "umar", "vera", "wim", "yara", "zoe"]
DOMAINS = ["example.com", "mail.example", "post.example", "inbox.example"]
PIN_LABELS = ["Grandma", "Cleaner", "Neighbour", "Dog walker", "Kids", "Courier", "Plumber", "Nanny", "Me", "Guest"]
ZONES = ["Europe/Berlin", "Europe/London", "Europe/Paris", "America/New_York", "UTC"]

# Activity kinds with their share and summary; box events carry their box and gateway.
EVENT_KINDS = [
    ("box.opened_pin", 30, "box", "Opened with PIN “{pin}”"),
    ("box.closed", 32, "box", "Closed"),
    ("box.battery", 6, "box", "Battery at {n} %"),
    ("box.rejected", 4, "box", "{n} wrong PINs in a row"),
    ("box.parcel_delivered", 6, "box", "A courier delivered a parcel"),
    ("box.parcel_collected", 5, "box", "Parcel collected"),
    ("box.opened_remote", 4, "box", "Opened remotely"),
    ("unlock.requested", 4, "member", "Asked “{box}” to open"),
    ("pin.added", 5, "member", "Added PIN “{pin}” to “{box}”"),
    ("pin.removed", 2, "member", "Removed PIN “{pin}” from “{box}”"),
    ("delivery.failed", 1, "system", "“{box}” did not confirm a change"),
    ("member.joined", 1, "member", "Joined the household"),
]
_KINDS = [k for k, *_ in EVENT_KINDS]
_WEIGHTS = [w for _, w, *_ in EVENT_KINDS]
_EVENT = {k: (actor, summary) for k, _w, actor, summary in EVENT_KINDS}


@dataclass
class Box:
    id: uuid.UUID
    gateway_id: uuid.UUID
    name: str
    channel_id: str
    pins: int = 0


@dataclass
class Household:
    index: int
    id: uuid.UUID
    name: str
    members: list = field(default_factory=list)  # (user id, email)
    gateways: list = field(default_factory=list)  # (id, channel id, thing id, sealed)
    boxes: list = field(default_factory=list)
    events: int = 0
    weight: float = 1.0


def _spread(total: int, weights: list[float], floor: int = 0) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder), each at least `floor`."""
    if not weights:
        return []
    rest = total - floor * len(weights)
    scale = sum(weights) or 1.0
    shares = [rest * w / scale for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: shares[i] - counts[i], reverse=True)
    for i in by_remainder[: rest - sum(counts)]:
        counts[i] += 1
    return [c + floor for c in counts]


def plan(households: int, seed: int) -> list[Household]:
    """Who has what (no rows yet): the probe first, then the others, each from its own
    random stream, the totals of boxes, PINs and events spread over them."""
    plans = []
    for i in range(households):
        rng = random.Random(f"{seed}:{i}")
        street = rng.choice(STREETS)
        name = "Quillfeather Lane 1" if i == 0 else f"{street} {rng.choice(['Street', 'Lane', 'Road'])} {i}"
        h = Household(index=i, id=uuid.UUID(int=rng.getrandbits(128), version=4), name=name)
        gateways = len(PROBE_GATEWAYS) if i == 0 else rng.choices(GATEWAY_COUNTS, GATEWAY_WEIGHTS)[0]
        for _ in range(gateways):
            h.gateways.append((uuid.UUID(int=rng.getrandbits(128), version=4), str(uuid.UUID(int=rng.getrandbits(128))),
                               str(uuid.UUID(int=rng.getrandbits(128))), rng.random() < 0.8))
        h.weight = gateways * rng.lognormvariate(0, 0.5)
        plans.append(h)
    others = plans[1:]
    box_counts = _spread(BOXES_PER_HOUSEHOLD * len(others), [h.weight for h in others], floor=1)
    event_weights = []
    for h, n in zip(others, box_counts, strict=True):
        rng = random.Random(f"{seed}:{h.index}:boxes")
        for b in range(n):
            gateway = h.gateways[b % len(h.gateways)]
            h.boxes.append(Box(uuid.UUID(int=rng.getrandbits(128), version=4), gateway[0],
                               _box_name(rng, b, h.index), str(uuid.UUID(int=rng.getrandbits(128)))))
        event_weights.append(n * rng.lognormvariate(0, 1.0))
    if plans:
        probe = plans[0]
        rng = random.Random(f"{seed}:0:boxes")
        for (gateway_id, *_rest), n in zip(probe.gateways, PROBE_GATEWAYS, strict=True):
            for b in range(n):
                name = PROBE_BOX if not probe.boxes else f"{BOX_NAMES[b % len(BOX_NAMES)]} {len(probe.boxes)}"
                probe.boxes.append(Box(uuid.UUID(int=rng.getrandbits(128), version=4), gateway_id, name,
                                       str(uuid.UUID(int=rng.getrandbits(128))), pins=PROBE_PINS_PER_BOX))
        probe.events = PROBE_EVENTS
    boxes = [b for h in others for b in h.boxes]
    box_rng = random.Random(f"{seed}:pins")
    for box, n in zip(boxes, _spread(PINS_PER_HOUSEHOLD * len(others),
                                     [box_rng.lognormvariate(0, 0.6) for _ in boxes]), strict=True):
        box.pins = min(n, 60)
    for h, n in zip(others, _spread(EVENTS_PER_HOUSEHOLD * len(others), event_weights), strict=True):
        h.events = n
    _members(plans, seed)
    return plans


def _box_name(rng: random.Random, b: int, household: int) -> str:
    # Mostly the usual names; one in ten a name of its own (what support searches for).
    if rng.random() < 0.1:
        return f"{rng.choice(STREETS)} box {household}-{b}"
    return BOX_NAMES[(b + household) % len(BOX_NAMES)]


def _members(plans: list[Household], seed: int) -> None:
    """1-3 members a household; a third of the extra members already belong to another
    household (no one to more than two)."""
    rng = random.Random(f"{seed}:members")
    shared: list = []  # users in exactly one household, who may join a second
    for h in plans:
        if h.index == 0:
            h.members = [(uuid.UUID(int=rng.getrandbits(128), version=4), PROBE_EMAIL)]
            h.members += [(uuid.UUID(int=rng.getrandbits(128), version=4), f"probe.member{k}@scale.example")
                          for k in (1, 2)]
            continue
        extra = rng.choices([0, 1, 2], [55, 35, 10])[0]
        new = []
        for k in range(1 + extra):
            if k and shared and rng.random() < 0.33:
                h.members.append(shared.pop(rng.randrange(len(shared))))
                continue
            email = f"{rng.choice(FIRST)}.{rng.choice(STREETS).lower()}{h.index}x{k}@{rng.choice(DOMAINS)}"
            user = (uuid.UUID(int=rng.getrandbits(128), version=4), email)
            h.members.append(user)
            new.append(user)
        shared.extend(new)


# --- writing --------------------------------------------------------------------------------

def _copy(conn: psycopg.Connection, table: str, columns: str, rows: Iterable[tuple]) -> int:
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def write(conn: psycopg.Connection, plans: list[Household], *, seed: int, password_hash: str,
          now: datetime | None = None) -> dict[str, int]:
    """Every row of the plan, table by table (the app context supplies the data key)."""
    now = now or datetime.now(UTC)
    rng = random.Random(f"{seed}:rows")
    counts: dict[str, int] = {}
    # Row triggers off while loading (the household change counts: portal/models/changes.py,
    # queued per row until commit, and the foreign keys' checks): the rows are consistent by
    # construction, and every household's count is started at the end instead.
    conn.execute("SET LOCAL session_replication_role = replica")
    box_keys = [crypto.generate_keypair()[0] for _ in range(64)]
    users: dict = {}
    for h in plans:
        for user_id, email in h.members:
            users.setdefault(user_id, email)
    counts["users"] = _copy(conn, "users", "id, email, password_hash, created_at, is_staff, is_disabled, display_name",
                            ((uid, email, password_hash, now - timedelta(days=DAYS + 30), False, False,
                              email.split(".")[0].title()) for uid, email in users.items()))
    counts["accounts"] = _copy(
        conn, "accounts",
        "id, name, created_at, link_state, link_updated_at, streamiot_email, streamiot_user_id, portal_thing_id, "
        "portal_thing_key_enc, link_public_key, link_private_key_enc, time_zone",
        _accounts(plans, now, rng))
    counts["memberships"] = _copy(
        conn, "memberships", "id, account_id, user_id, role, joined_at",
        ((uuid.uuid4(), h.id, uid, "owner" if k == 0 else "member", now - timedelta(days=DAYS + 20 - k))
         for h in plans for k, (uid, _e) in enumerate(h.members)))
    counts["gateways"] = _copy(
        conn, "gateways",
        "id, account_id, name, public_key, key_generated, protocol, command_counter, status, progress, thing_id, "
        "thing_key_enc, channel_id, last_heartbeat_at, created_at, key_state, key_progress",
        _gateways(plans, now, rng))
    counts["mailboxes"] = _copy(
        conn, "mailboxes",
        "id, account_id, gateway_id, name, kind, public_key, key_generated, command_counter, status, progress, "
        "channel_id, battery_percent, battery_at, is_open, last_event_at, created_at, safe_version",
        ((b.id, h.id, b.gateway_id, b.name, "parcel_box" if "Parcel" in b.name else "mailbox",
          box_keys[rng.randrange(len(box_keys))], False, 0, "active", _BOX_PROGRESS, b.channel_id,
          rng.randint(15, 100), now - timedelta(hours=rng.randint(1, 48)), False,
          now - timedelta(minutes=rng.randint(1, 5000)), now - timedelta(days=DAYS + 5), 0)
         for h in plans for b in h.boxes))
    pins, commands = _pins_and_commands(plans, now, rng)
    counts["pins"] = _copy(
        conn, "pins",
        "id, account_id, mailbox_id, label, digits_enc, digits_digest, ref, status, command_id, created_at, "
        "removed_at, purpose, assigned_to_id, time_zone, ends_at, windows, uses",
        pins)
    counts["commands"] = _copy(
        conn, "commands",
        "id, account_id, gateway_id, mailbox_id, pin_id, action, channel_key, channel_id, state, created_at, "
        "sent_at, answered_at",
        commands)
    counts["channel_cursors"] = _copy(
        conn, "channel_cursors", "channel_id, account_id, last_time, seen, last_polled_at",
        ((channel, h.id, now.timestamp() - rng.uniform(60, 3600), "{}", now - timedelta(seconds=rng.uniform(0, 30)))
         for h in plans for channel in [g[1] for g in h.gateways] + [b.channel_id for b in h.boxes]))
    alerts, notifications = _alerts(plans, now, seed)
    counts["alerts"] = _copy(conn, "alerts", "id, account_id, kind, gateway_id, mailbox_id, summary, details, "
                             "occurred_at, created_at", alerts)
    counts["notifications"] = _copy(conn, "notifications", "id, account_id, alert_id, user_id, channel, state, "
                                    "attempts, sent_at, read_at, created_at", notifications)
    counts["activity_events"] = _copy(
        conn, "activity_events",
        "account_id, occurred_at, recorded_at, actor_kind, actor_user_id, actor_label, kind, gateway_id, "
        "mailbox_id, summary, details",
        _events(plans, now, seed))
    counts["household_changes"] = conn.execute(
        "INSERT INTO household_changes (account_id, count) SELECT id, 0 FROM accounts ON CONFLICT DO NOTHING").rowcount
    conn.execute("SET LOCAL session_replication_role = DEFAULT")
    return counts


_GATEWAY_PROGRESS = json.dumps({"thing": True, "channel": True, "connect": True, "key": True,
                                "connect_sent": True, "register_sent": True})
_BOX_PROGRESS = json.dumps({"channel": True, "connect": True, "add_sent": True, "mailbox_sent": True,
                            "mailbox_confirmed": True})


def _accounts(plans, now, rng) -> Iterator[tuple]:
    for h in plans:
        public, private = crypto.generate_keypair()
        thing_key = str(uuid.UUID(int=rng.getrandbits(128)))
        yield (h.id, h.name, now - timedelta(days=DAYS + 30), "connected", now - timedelta(days=DAYS + 29),
               f"account-{h.id}@iotlock.invalid", str(uuid.UUID(int=rng.getrandbits(128))),
               str(uuid.UUID(int=rng.getrandbits(128))),
               crypto.encrypt(thing_key, table="accounts", column="portal_thing_key_enc", row_id=h.id),
               public, crypto.encrypt(private, table="accounts", column="link_private_key_enc", row_id=h.id),
               rng.choice(ZONES))


def _gateways(plans, now, rng) -> Iterator[tuple]:
    for h in plans:
        for k, (gateway_id, channel_id, thing_id, sealed) in enumerate(h.gateways):
            yield (gateway_id, h.id, GATEWAY_NAMES[k % len(GATEWAY_NAMES)], crypto.generate_keypair()[0], False,
                   "sealed" if sealed else "seed", rng.randint(5, 500), "active", _GATEWAY_PROGRESS, thing_id,
                   crypto.encrypt(str(uuid.uuid4()), table="gateways", column="thing_key_enc", row_id=gateway_id),
                   channel_id, now - timedelta(seconds=rng.uniform(0, 60)), now - timedelta(days=DAYS + 10),
                   "current", "{}")


# (pin status, its command's action and state, share). Nothing is in flight (handed to
# StreamIoT, its answer awaited): the benchmark chooses which households are active.
PIN_STATES = [("active", "AUTH", "confirmed", 89), ("adding", "AUTH", "queued", 1), ("adding", "AUTH", "failed", 1),
              ("removing", "UNAUTH", "queued", 1), ("removed", "UNAUTH", "confirmed", 8)]
_PIN_WEIGHTS = [s[3] for s in PIN_STATES]
WINDOWS = json.dumps([{"days": "1111100", "from": "08:00", "until": "18:00"}])


def _pins_and_commands(plans, now, rng) -> tuple[list[tuple], list[tuple]]:
    pins: list[tuple] = []
    commands: list[tuple] = []
    for h in plans:
        owner = h.members[0][0]
        gateway_channels = {g[0]: g[1] for g in h.gateways}
        sealed = {g[0]: g[3] for g in h.gateways}
        for gateway_id, channel_id, *_rest in h.gateways:
            for action in ("CONNECT", "REGISTER"):
                at = now - timedelta(days=DAYS + 10)
                commands.append((uuid.uuid4(), h.id, gateway_id, None, None, action, "gateway", channel_id,
                                 "confirmed", at, at, at))
        for box in h.boxes:
            created = now - timedelta(days=DAYS + 5)
            for action in ("ADD", "Mailbox"):
                commands.append((uuid.uuid4(), h.id, box.gateway_id, box.id, None, action, "gateway",
                                 gateway_channels[box.gateway_id], "confirmed", created, created, created))
            for _ in range(rng.randint(0, 6)):
                at = now - timedelta(minutes=rng.uniform(1, DAYS * 1440))
                commands.append((uuid.uuid4(), h.id, box.gateway_id, box.id, None, "UNLOCK", "mailbox",
                                 box.channel_id, "confirmed", at, at, at + timedelta(seconds=2)))
            used: set[str] = set()
            for p in range(box.pins):
                digits = str(rng.randint(100000, 99999999))
                while digits in used:
                    digits = str(rng.randint(100000, 99999999))
                used.add(digits)
                status, action, state, _w = rng.choices(PIN_STATES, _PIN_WEIGHTS)[0]
                pin_id, command_id = uuid.uuid4(), uuid.uuid4()
                created = now - timedelta(minutes=rng.uniform(60, DAYS * 1440))
                purpose = rng.choices(["household", "courier", "duress"], [75, 17, 8])[0]
                ruled = rng.random() < 0.15
                removed = status == "removed"
                pins.append((
                    pin_id, h.id, box.id, f"{PIN_LABELS[p % len(PIN_LABELS)]} {p}",
                    b"" if removed else crypto.encrypt(digits, table="pins", column="digits_enc", row_id=pin_id),
                    f"removed:{pin_id}" if removed else crypto.keyed_digest("pin", f"{box.id}:{digits}"),
                    new_pin_ref() if sealed[box.gateway_id] else None, status, command_id, created,
                    created + timedelta(days=3) if removed else None, purpose,
                    owner if purpose == "duress" else None,
                    "Europe/Berlin" if ruled else None,
                    now + timedelta(days=rng.randint(1, 60)) if ruled else None,
                    WINDOWS if ruled else None, rng.randint(0, 40),
                ))
                sent = created + timedelta(seconds=1) if state != "queued" else None
                commands.append((command_id, h.id, box.gateway_id, box.id, pin_id, action, "mailbox",
                                 box.channel_id if sent else None, state, created, sent,
                                 created + timedelta(seconds=3) if state in ("confirmed", "failed") else None))
    return pins, commands


ALERT_KINDS = ["opened", "wrong_pins", "parcel_delivered", "parcel_collected", "battery_low", "left_open",
               "gateway_offline", "gateway_online"]


def _alerts(plans, now, seed) -> tuple[list[tuple], list[tuple]]:
    """One alert per ALERT_SHARE of a household's events, each on every member's bell (read,
    but for those of the last day)."""
    alerts: list[tuple] = []
    notifications: list[tuple] = []
    for h in plans:
        rng = random.Random(f"{seed}:{h.index}:alerts")
        for _ in range(round(h.events * ALERT_SHARE)):
            box = rng.choice(h.boxes) if h.boxes else None
            at = now - timedelta(seconds=rng.uniform(0, DAYS * 86400.0))
            alert_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            kind = rng.choice(ALERT_KINDS)
            alerts.append((alert_id, h.id, kind, box.gateway_id if box else None, box.id if box else None,
                           f"{kind.replace('_', ' ').capitalize()} at “{box.name if box else h.name}”", "{}", at, at))
            read = at + timedelta(hours=rng.uniform(0.1, 20)) if now - at > timedelta(days=1) else None
            for user_id, _email in h.members:
                notifications.append((uuid.UUID(int=rng.getrandbits(128), version=4), h.id, alert_id, user_id,
                                      "portal", "sent", 0, at, read, at))
    return alerts, notifications


def _events(plans, now, seed) -> Iterator[tuple]:
    """Each household's events over the last DAYS days (streamed: a million rows)."""
    span = DAYS * 86400.0
    for h in plans:
        rng = random.Random(f"{seed}:{h.index}:events")
        members = h.members
        for kind in rng.choices(_KINDS, _WEIGHTS, k=h.events):
            actor, words = _EVENT[kind]
            box = rng.choice(h.boxes) if h.boxes else None
            at = now - timedelta(seconds=rng.uniform(0, span))
            user_id, email = rng.choice(members)
            summary = words.format(pin=PIN_LABELS[rng.randrange(len(PIN_LABELS))], n=rng.randint(2, 99),
                                   box=box.name if box else "a box")
            if actor == "box" and box is not None:
                yield (h.id, at, at, "box", None, box.name, kind, box.gateway_id, box.id, summary, "{}")
            elif actor == "member":
                yield (h.id, at, at, "member", user_id, email, kind, box.gateway_id if box else None,
                       box.id if box else None, summary, "{}")
            else:
                yield (h.id, at, at, "system", None, "IoTLock", kind, box.gateway_id if box else None,
                       box.id if box else None, summary, "{}")

"""Soak: 4 job workers, the virtual gateways, the reply reader and 2 members making 500 random
PIN adds, removals and withdrawals over 20 boxes at once, against the embedded StreamIoT
emulator.

When everything has settled, every box must hold exactly the PINs the portal shows as
active on it: no ghost PIN, no missing PIN, no PIN or command left in flight, no job left
queued or running. A failure names the box, the PIN label, the PIN's commands, what the
members did to it and what went over the wire for its digits.

The members' choices come from SOAK_SEED (printed; random by default); the threads'
timing does not repeat, so a seed replays the same script, not the same interleaving.
"""
import logging
import os
import random
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.devices.store import StateFile
from portal.extensions import db
from portal.jobs import virtual_gateways as manager
from portal.jobs.handlers import reports
from portal.jobs.runner import run_due_jobs
from portal.models import Account, Command, Gateway, Job, Mailbox, Pin, User
from portal.models.jobs import JOB_FAILED, JOB_QUEUED, JOB_RUNNING
from portal.services import commands, deliveries, pins
from portal.services.deliveries import CommandState, DeviceState, PinState
from portal.services.errors import ServiceError, ValidationFailed
from portal.streamiot import messages

# Job workers: 4 racing on PostgreSQL (FOR UPDATE SKIP LOCKED); SQLite deployments run one.
WORKERS = {"postgresql": 4, "sqlite": 1}
MEMBERS = 2
OPERATIONS = 500
GATEWAYS = 4
BOXES_PER_GATEWAY = 5  # 20 boxes
# A small pool of digits per box, so digits come back on a box soon after their PIN went.
DIGITS_PER_BOX = 10
QUIESCE_DEADLINE = 120.0
# Nothing moved for this long after the members stopped: what is left in flight is stuck.
STALL_SECONDS = 10.0
MEMBER_DEADLINE = 240.0
DETAILS_SHOWN = 40


@pytest.fixture
def app_overrides():
    return {
        "VIRTUAL_GATEWAYS": True,
        # The reader's idle sweep every couple of seconds (below): every household due each time.
        "IDLE_POLL_SECONDS": 1.0,
        # 4 workers, the devices, the reader and 2 members share one process here (they
        # would be separate processes, each with its own pool, in a deployment).
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 20, "max_overflow": 10},
    }


# --- what the members did ----------------------------------------------------------------

@dataclass
class PinNote:
    pin_id: uuid.UUID
    mailbox_id: uuid.UUID
    label: str
    digits: str
    member: str


@dataclass
class Soak:
    app: object
    account_id: uuid.UUID
    boxes: list  # mailbox ids
    pools: dict  # mailbox id -> candidate digits
    t0: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)
    notes: dict = field(default_factory=dict)  # pin id -> PinNote
    recent: deque = field(default_factory=lambda: deque(maxlen=12))  # pins just added or removed
    log: list = field(default_factory=list)  # (t, member, op, pin id, outcome)
    outcomes: Counter = field(default_factory=Counter)  # (op, outcome) -> n
    unexpected: list = field(default_factory=list)

    def at(self) -> float:
        return time.time() - self.t0

    def note(self, member: str, op: str, pin_id, outcome: str) -> None:
        with self.lock:
            self.log.append((self.at(), member, op, pin_id, outcome))
            self.outcomes[(op, outcome)] += 1

    def remember(self, pin_id) -> None:
        with self.lock:
            self.recent.append(pin_id)

    def recent_pin(self, rng):
        with self.lock:
            return rng.choice(list(self.recent)) if self.recent else None


def digit_pool(rng, count: int) -> list[str]:
    """`count` different digit strings the portal accepts (4 to 6 digits)."""
    found: list[str] = []
    while len(found) < count:
        text = str(rng.randint(1000, 999999))
        try:
            pins.check_digits(text)
        except ValidationFailed:
            continue
        if text not in found:
            found.append(text)
    return found


class Member(threading.Thread):
    """A household member clicking through the PIN pages: every service call runs in an app
    context (and so a session) of its own, like a request. Refusals (ServiceError) are
    expected outcomes of racing and are counted; anything else is recorded as a bug."""

    def __init__(self, soak: Soak, name: str, user_id, budget: int, rng: random.Random):
        super().__init__(name=f"soak-{name}", daemon=True)
        self.soak = soak
        self.member = name
        self.user_id = user_id
        self.budget = budget
        self.rng = rng
        self.partner: Member | None = None
        self.inbox: deque = deque()
        self.wakeup = threading.Event()
        self.added = 0

    # --- the loop --------------------------------------------------------------------

    def run(self) -> None:
        try:
            while self.budget > 0:
                if self.inbox:
                    op, pin_id = self.inbox.popleft()
                    self.act(op, pin_id)
                    continue
                self.random_operation()
                self.wakeup.wait(self.pause())
                self.wakeup.clear()
        except Exception:  # noqa: BLE001  (a bug in the soak itself: reported, never hidden)
            self.soak.unexpected.append(f"{self.member} crashed:\n{traceback.format_exc()}")

    def pause(self) -> float:
        r = self.rng.random()
        if r < 0.3:
            return 0.0
        if r < 0.7:
            return self.rng.uniform(0.0, 0.02)
        return self.rng.uniform(0.02, 0.15)

    def random_operation(self) -> None:
        r = self.rng.random()
        if r < 0.5:
            self.add()
        elif r < 0.68:
            self.act("remove", self.pick((PinState.ADDING, PinState.ACTIVE), recent_share=0.4))
        elif r < 0.82:
            self.act("withdraw", self.pick((PinState.ADDING, PinState.REMOVING), recent_share=0.6))
        elif r < 0.92:
            # Both members remove the same confirmed PIN at once.
            self.duel("remove", self.pick((PinState.ACTIVE,), recent_share=0.0))
        else:
            # Both members withdraw the same pending change at once.
            self.duel("withdraw", self.pick((PinState.ADDING, PinState.REMOVING), recent_share=0.7))

    def pick(self, statuses, recent_share: float):
        if self.rng.random() < recent_share:
            pin_id = self.soak.recent_pin(self.rng)
            if pin_id is not None:
                return pin_id
        with self.soak.app.app_context():
            ids = db.session.scalars(
                sa.select(Pin.id).where(Pin.account_id == self.soak.account_id, Pin.status.in_(statuses))
            ).all()
        return self.rng.choice(ids) if ids else self.soak.recent_pin(self.rng)

    def duel(self, op: str, pin_id) -> None:
        if pin_id is None:
            return
        if self.partner is not None and self.partner.budget > 0:
            self.partner.inbox.append((op, pin_id))
            self.partner.wakeup.set()
        self.act(op, pin_id)

    # --- the operations ----------------------------------------------------------------

    def call(self, op: str, pin_id, fn):
        """One service call as one request: (outcome, fn's plain result or None)."""
        self.budget -= 1
        result = None
        with self.soak.app.app_context():
            actor = db.session.get(User, self.user_id)
            try:
                result = fn(actor)
                outcome = "ok"
            except ServiceError as exc:
                outcome = f"{type(exc).__name__}: {exc.message}"
            except Exception as exc:  # noqa: BLE001  (reported by the test)
                outcome = f"UNEXPECTED {type(exc).__name__}"
                self.soak.unexpected.append(
                    f"{self.member} {op} of PIN {self._label(pin_id)}: {type(exc).__name__}: {exc}\n"
                    f"{traceback.format_exc()}"
                )
        if op == "add" and result is not None:
            pin_id = result[0]
        self.soak.note(self.member, op, pin_id, outcome)
        return outcome, result

    def _label(self, pin_id) -> str:
        note = self.soak.notes.get(pin_id)
        return f"“{note.label}”" if note else str(pin_id)

    def add(self, box=None, digits=None) -> None:
        if self.budget <= 0:
            return
        soak = self.soak
        box = box or self.rng.choice(soak.boxes)
        digits = digits or self.rng.choice(soak.pools[box])
        self.added += 1
        label = f"{self.member}-{self.added:03d}"

        def do(actor):
            [pin] = pins.add_pin(soak.account_id, box, actor, label=label, digits=digits)
            return pin.id, pin.command_id

        _outcome, result = self.call("add", None, do)
        if result is None:
            return
        pin_id, command_id = result
        with soak.lock:
            soak.notes[pin_id] = PinNote(pin_id, box, label, digits, self.member)
        soak.remember(pin_id)
        # Right away, racing the worker that sends the AUTH.
        r = self.rng.random()
        if r < 0.3:
            self.act("withdraw", pin_id, command_id=command_id)
        elif r < 0.4:
            self.act("remove", pin_id)
        elif r < 0.5:
            self.duel(self.rng.choice(("withdraw", "remove")), pin_id)

    def act(self, op: str, pin_id, command_id=None, retries: int = 3) -> None:
        if pin_id is None or self.budget <= 0:
            return
        soak = self.soak
        if op == "remove":
            outcome, status = self.call(
                "remove", pin_id, lambda actor: pins.remove_pin(soak.account_id, pin_id, actor).status
            )
        else:
            def withdraw(actor):
                current = command_id or db.session.scalar(sa.select(Pin.command_id).where(Pin.id == pin_id))
                if current is None:
                    return "no command"
                commands.withdraw_command(soak.account_id, current, actor)
                return db.session.scalar(sa.select(Pin.status).where(Pin.id == pin_id))

            outcome, status = self.call("withdraw", pin_id, withdraw)
        if "right now" in outcome and retries > 0:
            # "Try again in a moment": members do, at once, again and again.
            time.sleep(self.rng.uniform(0.0, 0.015))
            self.act(op, pin_id, command_id=command_id, retries=retries - 1)
            return
        if outcome != "ok":
            return
        soak.remember(pin_id)
        note = soak.notes.get(pin_id)
        if status == PinState.REMOVED and note is not None and self.rng.random() < 0.4:
            # Withdrew a new PIN (say, to fix its label): add the same digits again at once.
            self.add(note.mailbox_id, note.digits)
        elif op == "remove" and status == PinState.REMOVING and self.rng.random() < 0.15:
            self.act("withdraw", pin_id)  # changed my mind at once


# --- the worker side ---------------------------------------------------------------------

class Actors:
    """The job workers, the devices (virtual gateways) and the reply reader, each a thread."""

    def __init__(self, app, workers: int):
        self.app = app
        self.workers = workers
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.jobs_run = Counter()
        self.ticks = 0
        self.polls = 0

    def start(self) -> None:
        for n in range(self.workers):
            self._spawn(f"soak-worker-{n}", self._work, 0.02)
        self._spawn("soak-devices", self._devices, 0.05)
        self._spawn("soak-replies", self._replies, 0.1)

    def _spawn(self, name, step, pause) -> None:
        thread = threading.Thread(target=self._loop, args=(name, step, pause), name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _loop(self, name, step, pause) -> None:
        while not self.stop.is_set():
            try:
                busy = step(name)
            except Exception:  # noqa: BLE001  (reported by the test; the loop goes on)
                self.errors.append(f"{name}:\n{traceback.format_exc()}")
                busy = False
            if not busy:
                self.stop.wait(pause)

    def _work(self, name) -> bool:
        ran = run_due_jobs(self.app, worker_id=name, stop=self.stop)
        self.jobs_run[name] += ran
        return ran > 0

    def _devices(self, name) -> bool:
        manager.tick(self.app)
        self.ticks += 1
        return False

    def _replies(self, name) -> bool:

        with self.app.app_context():
            reports.poll_active_channels(self.app)
        if self.polls % 20 == 0:  # every couple of seconds: events and late answers
            with self.app.app_context():
                reports.poll_all_channels(self.app)
        self.polls += 1
        return False

    def wait_rounds(self, rounds: int = 2, timeout: float = 15.0) -> None:
        """Until the devices stepped and the reader read `rounds` more times."""
        ticks, polls = self.ticks, self.polls
        until = time.monotonic() + timeout
        while (self.ticks < ticks + rounds or self.polls < polls + rounds) and time.monotonic() < until:
            time.sleep(0.05)

    def stop_all(self) -> list[str]:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        return [t.name for t in self.threads if t.is_alive()]


class LogCollector(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record) -> None:
        self.records.append(record)

    def summary(self) -> Counter:
        return Counter((r.levelname, r.name, str(r.msg)) for r in self.records)


# --- settling ------------------------------------------------------------------------------

def in_flight(app, account_id, gateway_ids) -> tuple[tuple, bool]:
    """(signature of everything still moving, anything moving?)"""
    with app.app_context():
        jobs = db.session.execute(
            sa.select(Job.id, Job.state, Job.attempts).where(Job.state.in_((JOB_QUEUED, JOB_RUNNING)))
            .order_by(Job.id)
        ).all()
        pending = db.session.execute(
            sa.select(Command.id, Command.state).where(
                Command.account_id == account_id, Command.state.in_(deliveries.PENDING)
            ).order_by(Command.id)
        ).all()
        unsent = tuple(manager.virtual_gateway_for(app, gid).snapshot()["unsent"] for gid in gateway_ids)
    signature = (tuple(map(tuple, jobs)), tuple(map(tuple, pending)), unsent)
    return signature, bool(jobs or pending or any(unsent))


def quiesce(app, actors: Actors, account_id, gateway_ids) -> tuple[str, float]:
    """Let workers, devices and reader run until nothing is in flight ("settled"), nothing
    moved for STALL_SECONDS ("stalled") or QUIESCE_DEADLINE passed ("deadline")."""
    start = time.monotonic()
    last, last_change = None, start
    while True:
        signature, moving = in_flight(app, account_id, gateway_ids)
        now = time.monotonic()
        if not moving:
            # A message the portal no longer waits for (say, a withdrawn AUTH that went out
            # anyway) must still reach its box: two more rounds of devices and reader.
            actors.wait_rounds(2)
            signature, moving = in_flight(app, account_id, gateway_ids)
            if not moving:
                return "settled", time.monotonic() - start
        if signature != last:
            last, last_change = signature, now
        elif now - last_change >= STALL_SECONDS:
            return "stalled", now - start
        if now - start >= QUIESCE_DEADLINE:
            return "deadline", now - start
        time.sleep(0.25)


# --- the final check ---------------------------------------------------------------------

def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass
class Findings:
    problems: list = field(default_factory=list)  # (category, text)
    anomalies: list = field(default_factory=list)  # (category, text): reported, not failed on
    held: int = 0
    active: int = 0

    def counts(self, which="problems") -> Counter:
        return Counter(category for category, _text in getattr(self, which))


class FinalCheck:
    def __init__(self, app, soak: Soak, streamiot):
        self.app = app
        self.soak = soak
        self.streamiot = streamiot
        self.findings = Findings()

    def t(self, epoch: float | None) -> str:
        return "-" if epoch is None else f"+{epoch - self.soak.t0:.3f}s"

    def run(self) -> Findings:
        with self.app.app_context():
            self._run()
        return self.findings

    def _run(self) -> None:
        soak = self.soak
        account = db.session.get(Account, soak.account_id)
        self.portal_thing = account.portal_thing_id
        self.portal_key = crypto.decrypt(
            account.portal_thing_key_enc, table="accounts", column="portal_thing_key_enc", row_id=account.id
        )
        gateways = {g.id: g for g in db.session.scalars(sa.select(Gateway).where(Gateway.account_id == account.id))}
        boxes = db.session.scalars(
            sa.select(Mailbox).where(Mailbox.account_id == account.id).order_by(Mailbox.name)
        ).all()
        all_pins = db.session.scalars(sa.select(Pin).where(Pin.account_id == account.id)).all()
        self.pins = {p.id: p for p in all_pins}
        all_commands = db.session.scalars(
            sa.select(Command).where(Command.account_id == account.id).order_by(Command.created_at, Command.id)
        ).all()
        self.commands_of: dict = {}
        for command in all_commands:
            self.commands_of.setdefault(command.pin_id, []).append(command)
        self.gateway_names = {g.id: g.name for g in gateways.values()}
        states = {}
        for gateway_id in gateways:
            state_file = StateFile(manager.state_path(self.app, gateway_id))
            with state_file.locked():
                states[gateway_id] = state_file.load() or {}

        problem = self.findings.problems.append
        for box in boxes:
            where = f"box “{box.name}” (gateway “{self.gateway_names[box.gateway_id]}”)"
            held_box = states[box.gateway_id].get("mailboxes", {}).get(box.public_key)
            if held_box is None:
                problem(("box unknown to its gateway", f"{where}: its virtual gateway does not know it"))
                held = set()
            else:
                held = {int(p) for p in held_box["pins"]}
            self.findings.held += len(held)
            active = {}
            for pin in (p for p in all_pins if p.mailbox_id == box.id):
                if pin.status == PinState.ACTIVE:
                    active[deliveries.pin_digits(pin)] = pin
                elif pin.status in (PinState.ADDING, PinState.REMOVING):
                    last = self.commands_of.get(pin.id, [None])[-1]
                    category = f"PIN left {pin.status} (its last command {self._short(last)})"
                    problem((category, f"{where}: PIN still {pin.status}, on the box: "
                                       f"{'yes' if self._digits(pin) in held else 'no'}\n"
                                       + self.describe(box, self._digits(pin))))
            self.findings.active += len(active)
            for digits in sorted(set(held) - set(active)):
                category = f"ghost PIN (portal: {self._histories(box, digits)})"
                problem((category, f"{where}: GHOST PIN {digits}: the box holds it, the portal does not "
                                   f"show it as active\n" + self.describe(box, digits)))
            for digits in sorted(set(active) - set(held)):
                pin = active[digits]
                category = f"missing PIN (portal: active; {self._history(pin)})"
                problem((category, f"{where}: MISSING PIN {digits} “{pin.label}”: the portal shows it active, "
                                   f"the box does not hold it\n" + self.describe(box, digits)))

        boxes_by_id = {b.id: b for b in boxes}
        for command in all_commands:
            if command.state in deliveries.PENDING:
                pin = self.pins.get(command.pin_id)
                box = boxes_by_id.get(command.mailbox_id)
                text = f"{command.action} command {command.id} left {command.state}"
                if pin is not None and box is not None:
                    text += f" (PIN “{pin.label}” on box “{box.name}”)\n" + self.describe(box, self._digits(pin))
                problem((f"{command.action} command left {command.state}", text))
            elif command.state == CommandState.CONFIRMED and command.publish_started_at is None:
                # An answer settled a command the portal never handed to StreamIoT.
                problem((f"{command.action} confirmed, never sent", f"{command.action} command {command.id}"))
            elif command.action in ("AUTH", "UNAUTH") and (
                command.state == CommandState.WITHDRAWN and command.publish_started_at is not None
            ):
                # Legitimate only when the box itself refused it first (then it is not on the
                # box); counted to explain any difference.
                # Not a difference by itself (the box may agree by luck), but the portal's
                # record contradicts the wire: counted to explain the differences.
                pin = self.pins.get(command.pin_id)
                box = boxes_by_id.get(command.mailbox_id)
                where = f" (PIN “{pin.label}” on box “{box.name}”)" if pin and box else ""
                text = f"{command.action} command {command.id}: {self._short(command)}{where}"
                if pin is not None and box is not None:
                    text += "\n" + self.describe(box, self._digits(pin))
                self.findings.anomalies.append((self._short(command), text))
        for job in db.session.scalars(
            sa.select(Job).where(Job.state.in_((JOB_QUEUED, JOB_RUNNING, JOB_FAILED))).order_by(Job.id)
        ):
            text = (f"job {job.id} {job.kind} {job.payload} {job.state} after {job.attempts} attempts: "
                    f"{job.last_error}")
            problem((f"job left {job.state}", text))

    # --- describing what happened to some digits on a box -----------------------------

    def _digits(self, pin: Pin) -> int | None:
        note = self.soak.notes.get(pin.id)
        if note is not None:
            return int(note.digits)
        return deliveries.pin_digits(pin) if pin.digits_enc else None

    def _notes(self, box, digits: int | None) -> list[PinNote]:
        """The soak's PINs that had these digits on this box, oldest first."""
        return sorted(
            (n for n in self.soak.notes.values() if n.mailbox_id == box.id and int(n.digits) == digits),
            key=lambda n: _epoch(self.pins[n.pin_id].created_at) if n.pin_id in self.pins else float("inf"),
        )

    def _histories(self, box, digits: int) -> str:
        """Each PIN that had these digits on the box: its status and its commands."""
        found = [self.pins[n.pin_id] for n in self._notes(box, digits) if n.pin_id in self.pins]
        return " / ".join(f"{p.status}; {self._history(p)}" for p in found) or "no such PIN ever"

    @staticmethod
    def _short(command) -> str:
        """"AUTH confirmed"; "UNAUTH withdrawn after it was sent" and "AUTH confirmed, never
        sent" name the two ways a command's state can contradict what went over the wire."""
        if command is None:
            return "none"
        text = f"{command.action} {command.state}"
        if command.state == CommandState.WITHDRAWN and command.publish_started_at is not None:
            text += " after it was sent"
        elif command.state == CommandState.CONFIRMED and command.publish_started_at is None:
            text += ", never sent"
        return text

    def _history(self, pin: Pin) -> str:
        return "commands " + (", ".join(self._short(c) for c in self.commands_of.get(pin.id, [])) or "none")

    def describe(self, box, digits: int | None) -> str:
        """Every PIN of the soak that had these digits on this box, its commands and what the
        members did to it, then what went over the box's channel for these digits."""
        lines = []
        notes = self._notes(box, digits)
        for note in notes:
            pin = self.pins.get(note.pin_id)
            status = pin.status if pin else "row gone"
            lines.append(f"    PIN “{note.label}” ({note.pin_id.hex[:8]}, {status}, added by {note.member}, "
                         f"current command {pin.command_id.hex[:8] if pin and pin.command_id else '-'})")
            for c in self.commands_of.get(note.pin_id, []):
                reason = f" “{c.reason}”" if c.reason else ""
                lines.append(
                    f"      {c.action:<6} {c.id.hex[:8]} {c.state:<9} created {self.t(_epoch(c.created_at))} "
                    f"sent {self.t(_epoch(c.sent_at))} answered {self.t(_epoch(c.answered_at))} "
                    f"job {c.job_id}{reason}"
                )
            done = [f"{t:+.3f}s {member} {op}: {outcome}" for t, member, op, pin_id, outcome in self.soak.log
                    if pin_id == note.pin_id]
            lines.append("      members: " + (" | ".join(done) or "-"))
        if not notes:
            lines.append("    no PIN of the soak ever had these digits on this box")
        lines.append(f"      wire ({digits}): " + (" | ".join(self.wire(box, digits)) or "nothing"))
        return "\n".join(lines)

    def wire(self, box, digits) -> list[str]:
        """AUTH/UNAUTH and their answers for these digits on the box's channel, oldest first."""
        try:
            page = self.streamiot.read_messages(box.channel_id, thing_key=self.portal_key, limit=1000)
        except Exception as exc:  # noqa: BLE001  (the report goes on without it)
            return [f"(could not read the channel: {exc})"]
        seen = []
        for message in reversed(page["messages"]):
            parts = messages.split_name(message.get("name"))
            if not parts or parts[1] not in ("AUTH", "UNAUTH"):
                continue
            value = messages.message_value(message)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != digits:
                continue
            who = "portal" if message.get("publisher") == self.portal_thing else "box"
            unit = message.get("unit")
            seen.append(f"{self.t(message.get('time'))} {who} {parts[1]}" + (f" {unit}" if unit in ("Done", "Failed") else ""))
        return seen


# --- set-up --------------------------------------------------------------------------------

def set_up_boxes(kit) -> dict:
    """GATEWAYS gateways with BOXES_PER_GATEWAY boxes each, set up and confirmed by their
    virtual gateways: {gateway id: [mailbox ids]}."""
    layout = {}
    for g in range(GATEWAYS):
        gateway = kit.add_gateway(name=f"Soak gateway {g + 1}")
        layout[gateway.id] = [kit.add_mailbox(gateway, name=f"Box {g + 1}.{b + 1}").id
                              for b in range(BOXES_PER_GATEWAY)]
    for _ in range(40):
        kit.drain()
        manager.tick(kit.app)
        kit.poll()
        boxes = db.session.scalars(sa.select(Mailbox).where(Mailbox.account_id == kit.account.id)).all()
        pending = db.session.scalars(
            sa.select(Command).where(Command.account_id == kit.account.id,
                                     Command.state.in_(deliveries.PENDING))
        ).all()
        known = sum(len(manager.virtual_gateway_for(kit.app, gid).snapshot()["mailboxes"]) for gid in layout)
        if all(b.status == DeviceState.ACTIVE for b in boxes) and not pending and known == len(boxes):
            return layout
    raise AssertionError(
        "the boxes never finished setting up: "
        f"{[(b.name, b.status, b.last_error) for b in boxes]}, pending {[(c.action, c.state) for c in pending]}, "
        f"{known} known to their gateways"
    )


# --- the soak --------------------------------------------------------------------------------

def report(backend, seed, soak, actors, findings, logs, timing, settle, *, details: bool) -> str:
    ops = Counter()
    for (op, _outcome), n in soak.outcomes.items():
        ops[op] += n
    lines = [
        (f"SOAK on {backend}: {actors.workers} workers, {MEMBERS} members, {sum(ops.values())} operations over "
         f"{GATEWAYS * BOXES_PER_GATEWAY} boxes on {GATEWAYS} gateways (SOAK_SEED={seed})"),
        "  runtime: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timing.items())
        + f"; quiesce ended {settle}",
        "  operations: " + ", ".join(f"{op} {n}" for op, n in sorted(ops.items())),
    ]
    for (op, outcome), n in sorted(soak.outcomes.items(), key=lambda item: (item[0][0], -item[1])):
        lines.append(f"    {op:<8} {n:>4}  {outcome}")
    lines.append(f"  jobs run per worker: {dict(sorted(actors.jobs_run.items()))}; "
                 f"device steps {actors.ticks}, reader rounds {actors.polls}")
    lines.append(f"  at the end: {findings.held} PINs held by the boxes, {findings.active} active in the portal")
    if logs:
        lines.append("  portal log (warnings and errors):")
        for (level, name, msg), n in logs.most_common(12):
            lines.append(f"    {n:>4} {level} {name}: {msg[:120]}")
    for which, title in (("problems", "PROBLEMS"), ("anomalies", "anomalies (not failed on)")):
        counts = findings.counts(which)
        if counts:
            lines.append(f"  {title}: {sum(counts.values())}")
            for category, n in counts.most_common():
                lines.append(f"    {n:>4}  {category}")
    if soak.unexpected or actors.errors:
        lines.append(f"  UNEXPECTED EXCEPTIONS: members {len(soak.unexpected)}, workers/devices/reader "
                     f"{len(actors.errors)}")
        for text in (soak.unexpected + actors.errors)[:5]:
            lines.append("    " + text.rstrip().replace("\n", "\n    "))
    if details:
        for which, title in (("problems", "PROBLEMS"), ("anomalies", "anomalies")):
            found = getattr(findings, which)
            if found:
                shown = min(DETAILS_SHOWN, len(found))
                lines.append(f"  {title} in detail (first {shown} of {len(found)}; times from the soak's start):")
                lines.extend("  - " + text for _category, text in found[:shown])
    return "\n".join(lines)


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_boxes_hold_exactly_the_portals_pins_after_500_racing_operations(
    app, backend, kit, add_member, capsys, record_property
):
    began = time.monotonic()
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(10**9))
    rng = random.Random(seed)

    layout = set_up_boxes(kit)
    second, _membership = add_member(kit.account, f"second-{uuid.uuid4().hex[:6]}@example.com")
    member_ids = [kit.user.id, second.id]
    account_id = kit.account.id
    boxes = [box for ids in layout.values() for box in ids]
    db.session.remove()  # the test's own session holds nothing while the soak runs
    set_up = time.monotonic() - began

    soak = Soak(app, account_id, boxes, {box: digit_pool(rng, DIGITS_PER_BOX) for box in boxes})
    members = [
        Member(soak, f"m{n}", member_ids[n], OPERATIONS // MEMBERS + (n < OPERATIONS % MEMBERS),
               random.Random(rng.random()))
        for n in range(MEMBERS)
    ]
    members[0].partner, members[1].partner = members[1], members[0]
    actors = Actors(app, WORKERS[backend])
    collector = LogCollector()
    logging.getLogger("portal").addHandler(collector)
    stuck_threads = []
    try:
        soak_began = time.monotonic()
        soak.t0 = time.time()
        actors.start()
        for member in members:
            member.start()
        for member in members:
            member.join(MEMBER_DEADLINE)
        stuck_threads += [m.name for m in members if m.is_alive()]
        members_done = time.monotonic()
        settle, _ = quiesce(app, actors, account_id, list(layout))
        quiesced = time.monotonic()
    finally:
        stuck_threads += actors.stop_all()
        logging.getLogger("portal").removeHandler(collector)

    findings = FinalCheck(app, soak, kit.streamiot).run()
    timing = {
        "set-up": set_up,
        "operations": members_done - soak_began,
        "quiesce": quiesced - members_done,
        "total": time.monotonic() - began,
    }
    summary = (backend, seed, soak, actors, findings, collector.summary(), timing, settle)
    with capsys.disabled():  # the runtime and counts show in every run, passed or failed
        print("\n" + report(*summary, details=False))
    record_property("soak_seconds", round(timing["total"], 1))

    failures = []
    if stuck_threads:
        failures.append(f"threads still running: {stuck_threads}")
    if soak.unexpected or actors.errors:
        failures.append("unexpected exceptions (see UNEXPECTED EXCEPTIONS)")
    if settle != "settled":
        failures.append(f"the portal and its boxes did not settle ({settle})")
    if findings.problems:
        failures.append(f"{len(findings.problems)} differences between the portal and its boxes")
    assert not failures, "; ".join(failures) + "\n" + report(*summary, details=True)

"""Safe mode of a box: wrong PINs lock the keypad for longer and longer, and optionally two
PINs are needed to open it. The box keeps these rules itself (docs/device-protocol.md,
"Rules the box enforces"), so only a box on a sealed gateway can have them.

Each change is one SAFE command carrying the settings and their next version (the answer
echoes it); it is queued, sent, confirmed and retried through portal/services/deliveries.py
like a PIN change. A newer change takes back an older one that has not left yet.
"""
from dataclasses import dataclass
from typing import NoReturn

import sqlalchemy as sa

from portal.extensions import db
from portal.models import PROTOCOL_SEALED, Command, Gateway, Mailbox, User
from portal.services import activity, deliveries
from portal.services.deliveries import DeviceState, Shown
from portal.services.errors import Conflict, ValidationFailed
from portal.services.scope import get_scoped

MIN_ATTEMPTS = 3
MAX_ATTEMPTS = 20
MAX_STEPS = 10
MAX_STEP_MINUTES = 1440  # a day
# With dual control, the second PIN must follow the first within this many seconds.
DUAL_SECONDS = 60
NOT_SEALED = "This box's gateway cannot keep safe-mode rules by itself."


@dataclass(frozen=True)
class Settings:
    """Safe mode as the box gets it: wrong PINs before a lockout, each lockout's seconds in
    turn (the last repeats), and the dual-control time (0: one PIN opens)."""

    attempts: int
    lockouts: tuple[int, ...]
    dual_seconds: int

    def as_row(self) -> dict:
        return {"attempts": self.attempts, "lockouts": list(self.lockouts), "dual_seconds": self.dual_seconds}


# What a box is sent when safe mode is off: no lockout, one PIN opens.
OFF = Settings(attempts=0, lockouts=(), dual_seconds=0)


def settings_of(mailbox: Mailbox) -> Settings:
    """The settings the box is (being) given; OFF when safe mode is off."""
    row = mailbox.safe_settings
    if not row:
        return OFF
    return Settings(int(row["attempts"]), tuple(int(s) for s in row["lockouts"]), int(row["dual_seconds"]))


def check_attempts(value) -> int:
    try:
        attempts = int(str(value).strip())
    except ValueError:
        attempts = 0
    if not MIN_ATTEMPTS <= attempts <= MAX_ATTEMPTS:
        raise ValidationFailed(
            f"Choose {MIN_ATTEMPTS} to {MAX_ATTEMPTS} wrong PINs in a row before the keypad locks.", field="attempts"
        )
    return attempts


def check_lockouts(text: str | None) -> tuple[int, ...]:
    """Lockout minutes as the household types them ("1, 5, 15") as seconds, or
    ValidationFailed on the lockouts field saying why not."""

    def refuse(message: str) -> NoReturn:
        raise ValidationFailed(message, field="lockouts")

    parts = [p.strip() for p in (text or "").split(",")]
    if parts == [""]:
        refuse("Enter how many minutes each lockout lasts, like “1, 5, 15”.")
    if len(parts) > MAX_STEPS:
        refuse(f"At most {MAX_STEPS} lockout steps; the last one repeats.")
    minutes = []
    for part in parts:
        if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= MAX_STEP_MINUTES:
            refuse(f"Each lockout is a whole number of minutes from 1 to {MAX_STEP_MINUTES} (a day).")
        minutes.append(int(part))
    if minutes != sorted(minutes):
        refuse("Each lockout lasts at least as long as the one before it.")
    return tuple(m * 60 for m in minutes)


def lockouts_text(mailbox: Mailbox) -> str:
    """The lockout steps in minutes, as the form shows them ("1, 5, 15"); empty when off."""
    return ", ".join(_minutes(s) for s in settings_of(mailbox).lockouts)


def _minutes(seconds: int) -> str:
    return str(seconds // 60) if seconds % 60 == 0 else f"{seconds / 60:g}"


def describe(mailbox: Mailbox) -> str:
    """Safe mode in words: "Safe mode on for “Gun safe”: 5 wrong PINs lock the keypad for 1,
    5, then 15 minutes; two PINs needed"."""
    settings = settings_of(mailbox)
    if settings == OFF:
        return f"Safe mode off for “{mailbox.name}”"
    steps = [_minutes(s) for s in settings.lockouts]
    durations = steps[0] if len(steps) == 1 else f"{', '.join(steps[:-1])}, then {steps[-1]}"
    unit = "minute" if steps == ["1"] else "minutes"
    words = f"Safe mode on for “{mailbox.name}”: {settings.attempts} wrong PINs lock the keypad for {durations} {unit}"
    return words + ("; two PINs needed" if settings.dual_seconds else "")


def save(account_id, mailbox_id, actor: User, *, enabled: bool, attempts=None, lockouts: str | None = None,
         dual: bool = False) -> Mailbox:
    """Turn safe mode on (with these settings) or off, and queue them to the box.

    `attempts`: wrong PINs in a row before a lockout (3 to 20); `lockouts`: the minutes of
    each lockout in turn, as typed ("1, 5, 15"; the last repeats); `dual`: two different
    PINs within a minute open the box. Settings are checked only when `enabled`.
    """
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    if mailbox.status == DeviceState.REMOVING:
        raise Conflict("This box is being removed.")
    if mailbox.status == DeviceState.FAILED:
        raise Conflict("This box is not set up yet: retry its set-up first.")
    protocol = db.session.scalar(sa.select(Gateway.protocol).where(Gateway.id == mailbox.gateway_id))
    if protocol != PROTOCOL_SEALED:
        raise Conflict(NOT_SEALED)
    settings = OFF
    if enabled:
        settings = Settings(check_attempts(attempts), check_lockouts(lockouts), DUAL_SECONDS if dual else 0)
    command, version = _queue(mailbox, actor, settings)
    activity.record(
        account_id,
        kind="mailbox.safe_mode",
        summary=describe(mailbox),
        actor_user=actor,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
        details={"version": version, "command_id": str(command.id), **settings.as_row()},
    )
    db.session.commit()
    return mailbox


def send_again(mailbox: Mailbox, actor: User | None) -> Command | None:
    """The box's settings once more, behind whatever is queued for it (a box with a new key
    pair is new to its gateway); None when safe mode is off. The caller commits."""
    if mailbox.safe_settings is None:
        return None
    return _queue(mailbox, actor, settings_of(mailbox))[0]


def _queue(mailbox: Mailbox, actor: User | None, settings: Settings) -> tuple[Command, int]:
    """Store the settings and queue them with the next version; an older change that has not
    left is taken back."""
    # The row stays locked from here until the caller commits, so two changes take turns.
    version = db.session.execute(
        sa.update(Mailbox).where(Mailbox.id == mailbox.id).values(safe_version=Mailbox.safe_version + 1)
        .returning(Mailbox.safe_version)
    ).scalar_one()
    db.session.refresh(mailbox, ["safe_version", "safe_command_id"])  # as the lock found them
    older = db.session.get(Command, mailbox.safe_command_id) if mailbox.safe_command_id else None
    if older is not None:
        # Not on its way yet: the newer settings replace it (one that left is answered as sent).
        deliveries.withdraw(older, "Replaced by newer safe-mode settings before it reached the box.")
    command = deliveries.queue_command(account_id=mailbox.account_id, gateway_id=mailbox.gateway_id,
                                       mailbox_id=mailbox.id, action=deliveries.SAFE, requested_by=actor)
    command.value = str(version)
    mailbox.safe_settings = None if settings == OFF else settings.as_row()
    mailbox.safe_command_id = command.id
    return command, version


def command_of(mailbox: Mailbox) -> Command | None:
    """The SAFE command carrying the box's latest settings (None: never saved)."""
    return db.session.get(Command, mailbox.safe_command_id) if mailbox.safe_command_id else None


def shown(mailbox: Mailbox, command: Command | None, waiting: str | None = None) -> Shown | None:
    """Where the latest settings are on their way to the box, for the page (None: safe mode was
    never saved); `waiting` (deliveries.platform_waiting) says why a queued change waits."""
    if command is None or command.id != mailbox.safe_command_id:
        return None
    return deliveries.command_shown(command, waiting)

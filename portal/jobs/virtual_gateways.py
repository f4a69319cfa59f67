"""Virtual gateways run by the portal: one per provisioned gateway, when VIRTUAL_GATEWAYS is on.

The worker runs `tick(app)` every REPLY_POLL_SECONDS: each gateway with a StreamIoT
thing, key and channel gets one `VirtualGateway.step()` (portal/devices/, the firmware
with a plain StreamIoT client), built from the portal's own rows (the thing key is
decrypted here and kept only in memory). A gateway whose row is gone is dropped, and its
state file deleted.

The mailbox page's keypad and "what the box holds" reach the virtual gateways through
the port the services name (`VIRTUAL_DEVICES`), which `init_app` fills: the services
never import this side.
"""
import hashlib
import json
import logging
import os
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa

from portal.crypto import decrypt, public_from_private
from portal.devices.store import StateFile
from portal.devices.virtual_gateway import VirtualGateway
from portal.extensions import db
from portal.jobs.registry import periodic, stop_requested
from portal.models import Account, Gateway
from portal.services.ports import VIRTUAL_DEVICE_KEYS, VIRTUAL_DEVICES
from portal.streamiot.deployment import client_from_config

log = logging.getLogger(__name__)

_EXTENSION = "iotlock.virtual_gateways"


class _Registry:
    """The running virtual gateways of one app, by gateway id, with what they were built from."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gateways: dict[uuid.UUID, tuple[str, VirtualGateway]] = {}


def _registry(app) -> _Registry:
    registry = app.extensions.get(_EXTENSION)
    if registry is None:
        registry = app.extensions.setdefault(_EXTENSION, _Registry())
    return registry


def state_path(app, gateway_id) -> Path:
    return Path(app.config["VIRTUAL_GATEWAY_DIR"]) / f"{gateway_id}.json"


def _rows(gateway_id=None) -> list:
    query = (
        sa.select(
            Gateway.id,
            Gateway.thing_id,
            Gateway.thing_key_enc,
            Gateway.channel_id,
            Gateway.public_key,
            Gateway.protocol,
            Account.portal_thing_id,
            Account.link_public_key,
        )
        .join(Account, Account.id == Gateway.account_id)
        .where(
            Gateway.thing_id.is_not(None),
            Gateway.thing_key_enc.is_not(None),
            Gateway.channel_id.is_not(None),
        )
    )
    if gateway_id is not None:
        query = query.where(Gateway.id == gateway_id)
    return list(db.session.execute(query))


def key_path(app, gateway_id) -> Path:
    """Where the virtual gateway keeps its private key: the device's own storage."""
    return Path(app.config["VIRTUAL_GATEWAY_DIR"]) / f"{gateway_id}.key.json"


def keep_private_key(app, gateway_id, private_key: str) -> None:
    """A generated private key, handed over by the services when the gateway was added or
    got a new key pair (the VIRTUAL_DEVICE_KEYS port): written for the owner only."""
    path = key_path(app, gateway_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"public_key": public_from_private(private_key), "private_key": private_key}, out)
    partial.replace(path)


def _private_key(app, row) -> str | None:
    """The virtual device's private key for the row's current public key, if it holds one."""
    try:
        held = json.loads(key_path(app, row.id).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or held.get("public_key") != row.public_key:
        return None  # a key for an older pair, or none
    return held.get("private_key") if isinstance(held.get("private_key"), str) else None


def _fingerprint(app, row) -> str:
    parts = [row.thing_id, row.channel_id, row.public_key, row.portal_thing_id or "", row.thing_key_enc.hex(),
             row.protocol, row.link_public_key or "", "key" if _private_key(app, row) else ""]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _carry_over(path: Path, thing_id: str) -> None:
    """The gateway's keys were replaced (a new thing id for the same gateway row, whose id
    names the state file): the virtual gateway is loaded with the new settings and keeps
    its boxes, PINs and read positions, as a real gateway given new settings does.
    Without this the firmware would start empty (it resets a state of another thing)."""
    state_file = StateFile(path)
    with state_file.locked():
        state = state_file.load()
        if state is not None and state.get("thing_id") not in (None, thing_id):
            log.info("virtual gateway %s: new keys, keeping what it holds", path.stem)
            state["thing_id"] = thing_id
            state_file.save(state)


def _build(app, row) -> VirtualGateway:
    _carry_over(state_path(app, row.id), row.thing_id)
    settings = {
        "thing_id": row.thing_id,
        "thing_key": decrypt(row.thing_key_enc, table="gateways", column="thing_key_enc", row_id=row.id),
        "channel_id": row.channel_id,
        "public_key": row.public_key,
        # The portal knows its own thing, so its gateways need not learn it from CONNECT.
        "portal_thing_id": row.portal_thing_id,
        "protocol": row.protocol,
        "portal_public_key": row.link_public_key,
        "private_key": _private_key(app, row),
    }
    # One client per gateway: web requests (keypad) and the worker use them from
    # different threads, and a requests.Session is not meant to be shared that way.
    return VirtualGateway(
        settings,
        state_path(app, row.id),
        client_from_config(app.config),
        heartbeat_seconds=max(1.0, app.config["HEARTBEAT_WINDOW_SECONDS"] / 4),
    )


def _current(app, row) -> VirtualGateway:
    """The registered virtual gateway of a row, (re)built when the row's settings changed."""
    registry = _registry(app)
    fingerprint = _fingerprint(app, row)
    with registry.lock:
        known = registry.gateways.get(row.id)
        if known is not None and known[0] == fingerprint:
            return known[1]
        gateway = _build(app, row)
        registry.gateways[row.id] = (fingerprint, gateway)
        return gateway


@periodic("REPLY_POLL_SECONDS")
def tick(app) -> int:
    """One step of every provisioned gateway's virtual gateway; returns how many ran."""
    if not app.config.get("VIRTUAL_GATEWAYS"):
        return 0
    with app.app_context():
        try:
            rows = _rows()
            gateways = [(row.id, _current(app, row)) for row in rows]
            # A gateway still being set up has a private key but no virtual gateway yet.
            existing = set(db.session.scalars(sa.select(Gateway.id)))
        finally:
            # End the read transaction before talking to StreamIoT.
            db.session.remove()
    _drop_missing(app, {gateway_id for gateway_id, _ in gateways}, existing)
    for gateway_id, gateway in gateways:
        if stop_requested():
            break  # the worker is stopping
        try:
            gateway.step()
        except Exception:  # noqa: BLE001  (one broken gateway must not stop the others)
            log.exception("virtual gateway of gateway %s failed a step", gateway_id)
    return len(gateways)


def _drop_missing(app, present: set, existing: set) -> None:
    registry = _registry(app)
    with registry.lock:
        gone = [gid for gid in registry.gateways if gid not in present]
        dropped = [registry.gateways.pop(gid)[1] for gid in gone]
    for gateway in dropped:
        gateway.forget()
    # State files of gateways removed while the portal was stopped.
    folder = Path(app.config["VIRTUAL_GATEWAY_DIR"])
    if folder.is_dir():
        for path in folder.glob("*.json"):
            is_key = path.name.endswith(".key.json")
            try:
                gateway_id = uuid.UUID(path.name.removesuffix(".key.json") if is_key else path.stem)
            except ValueError:
                continue  # not ours (e.g. a CLI gateway's state)
            if gateway_id not in (existing if is_key else present):
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".lock").unlink(missing_ok=True)


def virtual_gateway_for(app, gateway) -> VirtualGateway | None:
    """The virtual gateway that plays `gateway` (a Gateway row or its id), or None when
    virtual gateways are off or the gateway is not provisioned in StreamIoT yet."""
    if not app.config.get("VIRTUAL_GATEWAYS"):
        return None
    gateway_id = getattr(gateway, "id", gateway)
    rows = _rows(gateway_id)
    if not rows:
        return None
    return _current(app, rows[0])


def init_app(app) -> None:
    """Offer the virtual gateways to the services (keypad, box snapshot); the offer answers
    None while VIRTUAL_GATEWAYS is off."""
    app.extensions[VIRTUAL_DEVICES] = lambda gateway: virtual_gateway_for(app, gateway)
    if app.config.get("VIRTUAL_GATEWAYS"):
        app.extensions[VIRTUAL_DEVICE_KEYS] = lambda gateway_id, private_key: keep_private_key(
            app, gateway_id, private_key)

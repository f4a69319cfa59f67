"""The emulator's MQTT adapter: Mosquitto (Debian's package) run as a child process, with
the access rules of Mainflux 0.13.0's adapter (docs/device-protocol.md, "MQTT").

A thing logs in with its id as username and its key as password, and may publish and
subscribe on `channels/<id>/messages[/...]` of the channels it is connected to. Mosquitto
learns who may do what from a password file (PBKDF2-SHA512, its `$7$` format) and an ACL
file, written again from the emulator's store after every change of things or connections
and re-read on SIGHUP. Every message the HTTP adapter accepts is published to the broker on
its topic with the same payload bytes, as the platform's MQTT forwarder does.

One difference: the platform's adapter ends the connection of a thing that subscribes to a
channel it is not connected to, while Mosquitto's ACL file grants the subscription and
delivers nothing on it. Either way such a thing hears nothing, and the portal subscribes
only to channels its thing is connected to.
"""
import base64
import contextlib
import ctypes
import getpass
import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from portal.streamiot.emulator.store import Store

log = logging.getLogger(__name__)

# The emulator's own login (the platform's forwarder needs none: it sits behind the proxy).
FORWARDER = "streamiot-emulator-forwarder"
# A topic nobody may read: the round trips of _settle() go there.
SETTLE_TOPIC = "channels/-/messages/emulator-settle"
PBKDF2_ROUNDS = 101  # mosquitto_passwd's default
START_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def mosquitto_path() -> str | None:
    """The Mosquitto binary, or None when the package is not installed."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def password_line(username: str, password: str, salt: bytes | None = None) -> str:
    """One line of a Mosquitto 2 password file."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ROUNDS)
    return f"{username}:$7${PBKDF2_ROUNDS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


class Broker:
    """Mosquitto for one emulator store, on 127.0.0.1:`port` (0: a free one)."""

    def __init__(self, store: Store, directory, port: int = 0, host: str = "127.0.0.1"):
        binary = mosquitto_path()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.store = store
        self.host = host
        self.port = port or free_port(host)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._secret = secrets.token_urlsafe(24)
        self._lines: dict[tuple[str, str], str] = {}
        self._sync_lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self._client: paho.Client | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> "Broker":
        self.sync(reload=False)
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous false\n"
            f"password_file {self.directory / 'passwords'}\n"
            f"acl_file {self.directory / 'acl'}\n"
            "persistence false\n"
            # Started as root, Mosquitto would switch to a user who cannot read these files.
            f"user {getpass.getuser()}\n"
            "log_type error\nlog_type warning\n"
        )
        log_file = open(self.directory / "mosquitto.log", "ab")  # noqa: SIM115  (the child keeps it)
        self.process = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log_file, stderr=log_file,
                                        start_new_session=True,
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        log_file.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not start (see {self.directory / 'mosquitto.log'})") from None
                time.sleep(0.05)
        if self._client is None:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{FORWARDER}-{secrets.token_hex(4)}")
            client.username_pw_set(FORWARDER, self._secret)
            client.reconnect_delay_set(1, 2)
            client.connect(self.host, self.port, keepalive=30)
            client.loop_start()
            self._client = client
        return self

    def stop(self) -> None:
        """Stop Mosquitto (the forwarder's connection comes back by itself after start())."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.stop()

    def sync(self, reload: bool = True) -> None:
        """Write who may log in and where, from the store; Mosquitto re-reads both files."""
        with self._sync_lock, self.store.transaction() as conn:
            things = conn.execute("SELECT id, key FROM things ORDER BY id").fetchall()
            connected = conn.execute("SELECT thing_id, channel_id FROM connections ORDER BY thing_id, channel_id")
            channels: dict[str, list[str]] = {}
            for row in connected:
                channels.setdefault(row["thing_id"], []).append(row["channel_id"])
            lines = {(FORWARDER, self._secret): self._line(FORWARDER, self._secret)}
            for thing in things:
                lines[(thing["id"], thing["key"])] = self._line(thing["id"], thing["key"])
            self._lines = lines
            acl = [f"user {FORWARDER}", "topic write channels/#", ""]
            for thing in things:
                acl.append(f"user {thing['id']}")
                for channel_id in channels.get(thing["id"], []):
                    acl += [f"topic readwrite channels/{channel_id}/messages",
                            f"topic readwrite channels/{channel_id}/messages/#"]
                acl.append("")
            _write(self.directory / "passwords", "\n".join(lines.values()) + "\n")
            _write(self.directory / "acl", "\n".join(acl) + "\n")
        if reload and self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
            self._settle()

    def _settle(self) -> None:
        """Return once Mosquitto has re-read its files, so the emulator's answer to a change
        holds when it is given (as the platform's does). Mosquitto reloads at the end of the
        loop pass in which the signal arrived; a second acknowledged round trip is served
        in a later pass."""
        client = self._client
        if client is None or not client.is_connected():
            return
        for _ in range(2):
            info = client.publish(SETTLE_TOPIC, b"", qos=1)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2.0)

    def _line(self, username: str, password: str) -> str:
        return self._lines.get((username, password)) or password_line(username, password)

    def publish(self, channel_id: str, subtopic: str, payload: bytes) -> None:
        """What the platform's forwarder does with a message of another adapter. While the
        broker is away the message is dropped (the forwarder gives up after its timeout):
        subscribers catch up through the reader."""
        if self._client is None or not self._client.is_connected():
            return
        topic = f"channels/{channel_id}/messages"
        if subtopic:
            topic += "/" + subtopic.replace(".", "/")
        self._client.publish(topic, payload, qos=1)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the emulator's process dies, even by
    SIGKILL, so no broker is left running on its own."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _write(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)

"""Subscriptions to StreamIoT's MQTT adapter: one connection per thing, all driven by one
thread (a selector over their sockets, not a thread per connection).

What the adapter of Mainflux 0.13.0 allows (docs/device-protocol.md, "MQTT"): the CONNECT
username is the thing's id and the password its key; a thing may subscribe to
`channels/<id>/messages[/<subtopic>]` (and `.../#`) of the channels it is connected to, one
topic filter per channel (no `+` for the channel); a subscriber receives the payload bytes as
published, and nothing says who published them. So a message here is only a wake-up: the
caller reads that channel through the reader, which does name the publisher.

`Watch` says what one connection is for; `Subscriptions.watch()` is given the whole set
(from any thread) and makes the connections match: opens, re-subscribes, closes. Lost
connections come back with exponential backoff and jitter.
"""
import contextlib
import logging
import random
import secrets
import selectors
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 30
BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0
QOS = 1


def topic_of(channel_id: str) -> str:
    """The filter for every message of a channel, with or without a subtopic."""
    return f"channels/{channel_id}/messages/#"


def channel_of(topic: str) -> str | None:
    """The channel id of a `channels/<id>/messages[/...]` topic."""
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == "channels" and parts[2] == "messages" and parts[1]:
        return parts[1]
    return None


def broker_address(url: str) -> tuple[str, int]:
    """`mqtt://host:port` (port 1883 when left out)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"not an mqtt://host:port address: {url!r}")
    return parts.hostname, parts.port or 1883


@dataclass(frozen=True)
class Watch:
    """One connection: `key` names it for the caller (a household), the thing logs in."""

    key: str
    thing_id: str
    thing_key: str
    channel_ids: frozenset[str]


class _Connection:
    def __init__(self, owner: "Subscriptions", watch: Watch):
        self.owner = owner
        self.watch = watch
        self.subscribed: frozenset[str] = frozenset()
        self.ready = False
        self.failures = 0
        self.next_attempt = 0.0
        self.started = False
        self.registered: object = None  # the socket the selector knows
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{owner.client_prefix}-{secrets.token_hex(6)}",
                             clean_session=True, protocol=paho.MQTTv311)
        client.username_pw_set(watch.thing_id, watch.thing_key)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.pending: dict[int, frozenset[str]] = {}

    # paho callbacks (run inside loop_read / loop_write of the loop thread)

    def _on_connect(self, _client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            log.warning("MQTT: %s refused (%s)", self.watch.key, reason)
            return
        self.subscribed = frozenset()
        self.resubscribe()

    def _on_subscribe(self, _client, _userdata, mid, reasons, _properties) -> None:
        channels = self.pending.pop(mid, frozenset())
        if any(r.is_failure for r in reasons):
            log.warning("MQTT: %s may not subscribe to %s", self.watch.key, sorted(channels))
            self.ready = False
            return
        self.failures = 0
        self.ready = self.subscribed == self.watch.channel_ids and not self.pending
        self.owner.on_ready(self.watch.key, channels)

    def _on_message(self, _client, _userdata, message) -> None:
        channel_id = channel_of(message.topic)
        if channel_id is not None and channel_id in self.watch.channel_ids:
            self.owner.on_message(channel_id)

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        self.ready = False
        self.subscribed = frozenset()
        self.pending.clear()
        self.schedule_retry(f"disconnected ({reason})")

    # driven by the loop thread

    def schedule_retry(self, why: str) -> None:
        self.failures += 1
        delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(self.failures - 1, 16)))
        self.next_attempt = time.monotonic() + delay
        log.info("MQTT: %s %s; again in %.1f s", self.watch.key, why, delay)

    def connect(self, host: str, port: int) -> None:
        try:
            if self.started:
                self.client.reconnect()
            else:
                self.started = True
                self.client.connect(host, port, keepalive=KEEPALIVE_SECONDS)
        except (OSError, ValueError) as exc:
            self.schedule_retry(f"could not connect ({exc})")

    def resubscribe(self) -> None:
        """Make the subscriptions match the watch's channels (on the live connection)."""
        wanted = self.watch.channel_ids
        gone = self.subscribed - wanted
        new = wanted - self.subscribed
        if gone:
            self.client.unsubscribe([topic_of(c) for c in sorted(gone)])
        if new:
            result, mid = self.client.subscribe([(topic_of(c), QOS) for c in sorted(new)])
            if result == paho.MQTT_ERR_SUCCESS and mid is not None:
                self.pending[mid] = frozenset(new)
        self.subscribed = wanted
        if not new:
            self.ready = not self.pending

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.client.disconnect()


class Subscriptions:
    """Connections to one broker, one per `Watch`, driven by `run()` in one thread.

    `on_message(channel_id)`: a message arrived on a watched channel. `on_ready(key,
    channel_ids)`: the connection `key` is subscribed to those channels (after a connect or
    reconnect, every channel: whatever was sent meanwhile is for the caller to catch up on).
    Both run in the loop thread and must be quick.
    """

    def __init__(self, url: str, on_message: Callable[[str], None],
                 on_ready: Callable[[str, frozenset[str]], None], client_prefix: str = "iotlock"):
        self.host, self.port = broker_address(url)
        self.on_message = on_message
        self.on_ready = on_ready
        self.client_prefix = client_prefix
        self._connections: dict[str, _Connection] = {}
        self._wanted: dict[str, Watch] | None = None
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()

    def watch(self, watches: list[Watch]) -> None:
        """The connections wanted from now on (applied by the loop thread)."""
        with self._lock:
            self._wanted = {w.key: w for w in watches}

    def ready(self) -> set[str]:
        """The keys whose connection is up and subscribed to every channel of its watch."""
        return {key for key, conn in list(self._connections.items()) if conn.ready}

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: apply watches, (re)connect what is due, move bytes, keep alive."""
        last_misc = 0.0
        try:
            while not stop.is_set():
                self._apply_watches()
                now = time.monotonic()
                for conn in list(self._connections.values()):
                    if conn.client.socket() is None and now >= conn.next_attempt:
                        conn.connect(self.host, self.port)
                self._sync_selector()
                for selected, events in self._selector.select(timeout=0.2) if self._selector.get_map() else []:
                    conn = selected.data
                    if events & selectors.EVENT_READ:
                        conn.client.loop_read()
                    if events & selectors.EVENT_WRITE and conn.client.socket() is not None:
                        conn.client.loop_write()
                if not self._selector.get_map():
                    stop.wait(0.2)
                if time.monotonic() - last_misc >= 1.0:
                    last_misc = time.monotonic()
                    for conn in list(self._connections.values()):
                        if conn.client.socket() is not None:
                            conn.client.loop_misc()
        finally:
            for conn in self._connections.values():
                conn.close()
            self._sync_selector(closing=True)

    def _apply_watches(self) -> None:
        with self._lock:
            wanted, self._wanted = self._wanted, None
        if wanted is None:
            return
        for key in list(self._connections):
            conn = self._connections[key]
            watch = wanted.get(key)
            if watch is None or (watch.thing_id, watch.thing_key) != (conn.watch.thing_id, conn.watch.thing_key):
                conn.close()
                self._unregister(conn)
                del self._connections[key]
        for key, watch in wanted.items():
            existing = self._connections.get(key)
            if existing is None:
                self._connections[key] = _Connection(self, watch)
            elif watch.channel_ids != existing.watch.channel_ids:
                existing.watch = watch
                if existing.client.is_connected():
                    existing.resubscribe()

    def _unregister(self, conn: _Connection) -> None:
        if conn.registered is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.registered)  # type: ignore[arg-type]
            conn.registered = None

    def _sync_selector(self, closing: bool = False) -> None:
        """The selector watches each live socket: reads always, writes while paho has bytes queued."""
        for conn in list(self._connections.values()):
            sock = None if closing else conn.client.socket()
            if sock is not conn.registered:
                self._unregister(conn)
                if sock is not None:
                    self._selector.register(sock, selectors.EVENT_READ, conn)
                    conn.registered = sock
            if sock is not None:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.client.want_write() else 0)
                self._selector.modify(sock, events, conn)

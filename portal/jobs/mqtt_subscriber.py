"""The MQTT subscriber: device messages of one shard of the households, as they arrive.

One connection per household (its portal thing) subscribes to the household's channels
(portal/streamiot/mqtt.py). A message on a channel only wakes it: the subscriber then reads
that channel through the reader, which names the publisher, and applies what it finds with
the reader path's own code (handlers/reports.py poll, cursors in channel_cursors), so trust
stays "by publisher" and a message both paths see is applied once. After every (re)connect
the household's channels are read the same way: what was sent while no subscription was
there is caught up. Households come and go with a rescan every MQTT_RESCAN_SECONDS.
"""
import logging
import threading
import time

from portal.extensions import db
from portal.jobs.handlers import reports
from portal.services import device_reports, mqtt_coverage
from portal.streamiot.mqtt import Subscriptions, Watch

log = logging.getLogger("portal.jobs")

# How often the subscriber says which households it holds (they count as held for
# MQTT_VOUCH_SECONDS from then), and how soon at the earliest after one more is subscribed.
VOUCH_EVERY_SECONDS = 15.0
VOUCH_SOON_SECONDS = 1.0
# Wake-ups are read in batches of at most this many channels.
READ_BATCH = 200


class Subscriber:
    def __init__(self, app, shard: int = 0, shards: int = 1):
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} of {shards} does not exist")
        self.app = app
        self.shard, self.shards = shard, shards
        self.subscriptions = Subscriptions(app.config["STREAMIOT_MQTT_URL"], self._woken, self._ready,
                                           client_prefix=f"iotlock-{shard}of{shards}")
        self._due: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._keys: dict = {}
        self._vouched: set[str] = set()
        self._vouch_soon = False
        self._accounts: dict[str, object] = {}  # watch key -> account id
        self.reads = 0  # channels read on a wake-up (for the benchmark and the log)

    # called by the MQTT loop thread

    def _woken(self, channel_id: str) -> None:
        with self._lock:
            self._due.add(channel_id)
        self._wake.set()

    def _ready(self, _key: str, channel_ids: frozenset[str]) -> None:
        with self._lock:
            self._due.update(channel_ids)  # catch up on what was sent while unsubscribed
            self._vouch_soon = True
        self._wake.set()

    # the subscriber's own thread

    def start(self) -> "Subscriber":
        """Run in a daemon thread (`flask serve`, tests) until stop()."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="iotlock-mqtt-subscriber",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop(self._stop)
        self._thread.join(timeout)

    def request_stop(self, stop: threading.Event) -> None:
        stop.set()
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set; nothing that fails stops it (logged, tried again)."""
        log.info("MQTT subscriber %d/%d started", self.shard, self.shards)
        loop = threading.Thread(target=self.subscriptions.run, args=(stop,), name="iotlock-mqtt", daemon=True)
        loop.start()
        rescan_every = float(self.app.config.get("MQTT_RESCAN_SECONDS", 5.0))
        next_scan = next_vouch = last_vouch = 0.0
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_scan:
                    next_scan = now + rescan_every
                    self.rescan()
                if self._vouch_soon:  # a household newly subscribed: slow its polling soon
                    next_vouch = min(next_vouch, last_vouch + VOUCH_SOON_SECONDS)
                if now >= next_vouch:
                    self._vouch_soon = False
                    last_vouch, next_vouch = now, now + VOUCH_EVERY_SECONDS
                    self.vouch()
                self.read_due()
            except Exception:  # noqa: BLE001  (database away, ...: the next round tries again)
                log.exception("MQTT subscriber round failed")
                with self.app.app_context():
                    db.session.rollback()
                stop.wait(1.0)
            self._wake.wait(max(0.0, min(next_scan, next_vouch) - time.monotonic()))
            self._wake.clear()
        loop.join(5)
        try:
            with self.app.app_context():
                mqtt_coverage.withdraw(self._accounts[key] for key in self._vouched if key in self._accounts)
        except Exception:  # noqa: BLE001  (they run out by themselves)
            log.exception("could not withdraw the MQTT coverage of shard %d/%d", self.shard, self.shards)
        log.info("MQTT subscriber %d/%d stopped", self.shard, self.shards)

    def rescan(self) -> None:
        """Subscribe to what the shard's households have now (links, unlinks, new boxes)."""
        with self.app.app_context():
            households = mqtt_coverage.households_of_shard(self.shard, self.shards, self._keys)
            db.session.commit()
        self._accounts = {str(h.account_id): h.account_id for h in households}
        self.subscriptions.watch([Watch(str(h.account_id), h.thing_id, h.thing_key, h.channel_ids)
                                  for h in households])

    def vouch(self) -> None:
        ready = {key for key in self.subscriptions.ready() if key in self._accounts}
        lost = self._vouched - ready
        with self.app.app_context():
            mqtt_coverage.vouch((self._accounts[key] for key in ready), self.app.config["MQTT_VOUCH_SECONDS"])
            mqtt_coverage.withdraw(self._accounts[key] for key in lost if key in self._accounts)
        self._vouched = ready

    def read_due(self) -> None:
        """Read the channels that had a message (or a new subscription) since the last read."""
        while True:
            with self._lock:
                batch = set(list(self._due)[:READ_BATCH])
                self._due -= batch
            if not batch:
                return
            with self.app.app_context():
                targets = device_reports.channels_named(batch)
                db.session.commit()  # no transaction stays open while the reader is asked
                reports.poll(self.app, targets, woken=True)
            self.reads += len(batch)

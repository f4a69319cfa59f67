"""Shared fixtures: the emulator's MQTT adapter (Mosquitto as a child process) and MQTT
subscribers of the portal. Skipped where Mosquitto is not installed, unless
IOTLOCK_REQUIRE_ALL_TESTS=1 (CI installs it)."""
import time

import pytest

from portal.extensions import db
from portal.jobs.mqtt_subscriber import Subscriber
from portal.streamiot.emulator import get_emulator
from portal.streamiot.emulator.broker import Broker, mosquitto_path
from tests.conftest import skip_or_fail


def wait_until(check, what: str, timeout: float = 20.0):
    """Poll `check()` until it is true (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        db.session.commit()
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def broker(app, tmp_path):
    """Mosquitto as the embedded emulator's MQTT adapter; the app's STREAMIOT_MQTT_URL."""
    if mosquitto_path() is None:
        skip_or_fail("Mosquitto is not installed (apt-get install mosquitto)")
    emulator = get_emulator(app.config["STREAMIOT_EMULATOR_DB"], app.config["STREAMIOT_EMULATOR_TOKEN_TTL"])
    broker = Broker(emulator.store, tmp_path / "mqtt").start()
    emulator.attach_broker(broker)
    app.config["STREAMIOT_MQTT_URL"] = broker.url
    yield broker
    emulator.broker = None
    broker.close()


@pytest.fixture
def start_subscriber(app, broker):
    """start_subscriber(shard=0, shards=1) -> a running Subscriber, stopped after the test."""
    running = []

    def start(shard: int = 0, shards: int = 1) -> Subscriber:
        subscriber = Subscriber(app, shard, shards).start()
        running.append(subscriber)
        return subscriber

    yield start
    for subscriber in running:
        subscriber.stop()

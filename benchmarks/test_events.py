"""Keypad press to activity row, on the embedded default (`make run`): the embedded StreamIoT
emulator, virtual gateways and the worker thread, with the shipped poll intervals
(config.Config: REPLY_POLL_SECONDS 1 s, IDLE_POLL_SECONDS 30 s, WATCH_SECONDS 60 s).

A member has the mailbox page open (its live refresh keeps the household watched). Each
round types the right PIN on the box's keypad through the page's own form (POST
/mailboxes/<id>/keypad), then waits for the "Opened with PIN" row in the activity log.
Rounds start at random moments, so they fall anywhere in the worker's one-second cycle.

Target: p95 of 20 presses at most 3 s (`extra_info["p95_s"]`); the press travels: keypad ->
virtual box (next gateway step, <= 1 s) -> StreamIoT -> the fast read (<= 1 s) -> the log.

The MQTT variant: the emulator's MQTT adapter (Mosquitto) and a subscriber thread, nobody
looking at the household (no fast read), the shipped intervals otherwise. Each press is
typed on the virtual box and published at once, as a gateway does with a key press (the
page's keypad waits for the next gateway step instead, to keep StreamIoT out of web
requests): keypad -> StreamIoT -> MQTT -> a read of that channel -> the log. Target: p95
of 20 presses at most 1 s.
"""
import random
import statistics
import time
import warnings

import pytest
import sqlalchemy as sa

from config import Config
from portal.extensions import db
from portal.jobs.mqtt_subscriber import Subscriber
from portal.jobs.runner import drain
from portal.jobs.virtual_gateways import virtual_gateway_for
from portal.jobs.worker import start_in_background
from portal.models import ActivityEvent, Mailbox, Pin
from portal.services import gateways, mailboxes, pins
from portal.services.deliveries import DeviceState, PinState
from portal.streamiot.emulator import get_emulator
from portal.streamiot.emulator.broker import Broker, mosquitto_path
from tests.plugins.accounts import PASSWORD, Auth, csrf_from

from .conftest import STRICT, SoftTargetMissed

PRESSES = 20
TARGET_P95 = 3.0
TARGET_P95_MQTT = 1.0
DIGITS = "4821"


@pytest.fixture
def app_overrides():
    return {
        "VIRTUAL_GATEWAYS": True,
        "JOB_POLL_SECONDS": Config.JOB_POLL_SECONDS,
        "REPLY_POLL_SECONDS": Config.REPLY_POLL_SECONDS,
        "IDLE_POLL_SECONDS": Config.IDLE_POLL_SECONDS,
        "WATCH_SECONDS": Config.WATCH_SECONDS,
    }


def _wait_for(check, timeout=30.0, what="the devices"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _opened_count(mailbox_id) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(ActivityEvent)
        .where(ActivityEvent.mailbox_id == mailbox_id, ActivityEvent.kind == "box.opened_pin")
    )


def _box_with_pin(user, account, gateway) -> Mailbox:
    """A box on the gateway, confirmed by its virtual gateway, with the PIN confirmed too."""
    mailbox, _key = mailboxes.add_mailbox(account.id, gateway.id, user, name="Front box", kind="mailbox",
                                          key_mode="generate")
    _wait_for(lambda: db.session.get(Mailbox, mailbox.id).status == DeviceState.ACTIVE, what="the box")
    [pin] = pins.add_pin(account.id, mailbox.id, user, label="Grandma", digits=DIGITS)
    _wait_for(lambda: db.session.get(Pin, pin.id).status == PinState.ACTIVE, what="the PIN")
    return mailbox


def _seconds_to_row(mailbox_id, before: int, started: float) -> float:
    """Seconds from `started` until the box's opened rows outnumber `before`."""
    while True:
        db.session.commit()
        if _opened_count(mailbox_id) > before:
            return time.monotonic() - started
        if time.monotonic() - started > 30:
            pytest.fail("a key press never reached the activity log")
        time.sleep(0.01)


def test_keypad_press_to_activity_row(benchmark, app, make_household):
    user, account = make_household("bench-events@example.com", "Bench Street")
    drain(app)
    gateway, _key = gateways.add_gateway(account.id, user, name="Hallway", key_mode="generate")
    drain(app)
    stop = start_in_background(app)
    try:
        mailbox = _box_with_pin(user, account, gateway)

        auth = Auth(app.test_client())
        assert auth.login(user.email, PASSWORD).status_code == 302
        page = auth.client.get(f"/mailboxes/{mailbox.id}")
        token = csrf_from(page.get_data(as_text=True))
        rng = random.Random(9)
        latencies: list[float] = []

        def press_and_wait():
            time.sleep(rng.uniform(0.2, 1.2))  # a random phase of the worker's cycle
            # The page's live refresh, as an open tab does it every few seconds.
            auth.client.get(f"/mailboxes/{mailbox.id}", headers={"HX-Request": "true"})
            before = _opened_count(mailbox.id)
            db.session.commit()
            started = time.monotonic()
            response = auth.client.post(f"/mailboxes/{mailbox.id}/keypad", data={"csrf_token": token,
                                                                                  "digits": DIGITS})
            assert response.status_code in (200, 303), response.get_data(as_text=True)[:300]
            latencies.append(_seconds_to_row(mailbox.id, before, started))

        benchmark.pedantic(press_and_wait, rounds=PRESSES, iterations=1)
    finally:
        stop()

    _report(benchmark, latencies, TARGET_P95, "keypad -> activity row")


def _report(benchmark, latencies: list[float], target: float, what: str) -> None:
    latencies.sort()
    p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)]
    median = statistics.median(latencies)
    benchmark.extra_info.update(presses=len(latencies), p95_s=round(p95, 3), median_s=round(median, 3),
                                max_s=round(latencies[-1], 3), target_p95_s=target)
    print(f"\n{what} ({db.engine.dialect.name}): p95 {p95:.2f} s, "
          f"median {median:.2f} s, max {latencies[-1]:.2f} s over {len(latencies)} presses")
    if p95 > target:
        message = f"p95 {p95:.2f} s is over the target of {target} s"
        if STRICT:
            pytest.fail(message)
        warnings.warn(message, SoftTargetMissed, stacklevel=2)


def test_keypad_press_to_activity_row_by_mqtt(benchmark, app, make_household, tmp_path):
    if mosquitto_path() is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto)")
    emulator = get_emulator(app.config["STREAMIOT_EMULATOR_DB"], app.config["STREAMIOT_EMULATOR_TOKEN_TTL"])
    broker = Broker(emulator.store, tmp_path / "mqtt").start()
    emulator.attach_broker(broker)
    app.config["STREAMIOT_MQTT_URL"] = broker.url
    user, account = make_household("bench-mqtt@example.com", "Bench Street")
    drain(app)
    gateway, _key = gateways.add_gateway(account.id, user, name="Hallway", key_mode="generate")
    drain(app)
    stop = start_in_background(app)
    subscriber = None
    try:
        mailbox = _box_with_pin(user, account, gateway)
        # Started once the box exists, as in steady state (a box added later is subscribed
        # at the next rescan, MQTT_RESCAN_SECONDS, and what it sent before is caught up then).
        subscriber = Subscriber(app).start()
        _wait_for(lambda: str(account.id) in subscriber.subscriptions.ready(), what="the subscription")
        box_key = db.session.get(Mailbox, mailbox.id).public_key
        device = virtual_gateway_for(app, gateway.id)
        db.session.commit()
        rng = random.Random(9)
        latencies: list[float] = []

        def press_and_wait():
            time.sleep(rng.uniform(0.2, 1.2))  # a random phase of the worker's cycle
            before = _opened_count(mailbox.id)
            db.session.commit()
            started = time.monotonic()
            assert device.keypad(box_key, DIGITS, publish_now=True) == "opened"
            latencies.append(_seconds_to_row(mailbox.id, before, started))

        benchmark.pedantic(press_and_wait, rounds=PRESSES, iterations=1)
        benchmark.extra_info["wake_up_reads"] = subscriber.reads
    finally:
        if subscriber is not None:
            subscriber.stop()
        stop()
        emulator.broker = None
        broker.close()

    _report(benchmark, latencies, TARGET_P95_MQTT, "keypad -> activity row by MQTT")

"""What reading the devices costs the workers per second, reader polling versus MQTT, with
N linked households (a gateway and a box each: two channels) of which 1 % are active (a
member has a page open), every gateway sending its heartbeat every 30 s as the firmware
does. N is IOTLOCK_BENCH_HOUSEHOLDS (default 100); the figures are also given per
household, so they scale to the 10,000-household data set.

StreamIoT is the emulator in a process of its own (`flask streamiot-emulator --mqtt-port`,
its Mosquitto a child of it), so the CPU measured (`time.process_time` of this process) is
the portal's alone: the worker's reads and applies, and the subscriber's MQTT loop, rescans
and wake-up reads. Requests are those the portal sends to StreamIoT.

- Reader polling (shipped intervals): the active households' channels every second
  (REPLY_POLL_SECONDS), every other channel every 30 s (IDLE_POLL_SECONDS).
- MQTT: a subscriber holds every household; each heartbeat wakes one read of its channel;
  the workers read the held households every 300 s (IDLE_POLL_SECONDS_WITH_MQTT) and the
  fast read finds nothing to do (being looked at costs nothing: events arrive by MQTT).
"""
import contextlib
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from config import Config
from portal import crypto
from portal.extensions import db
from portal.jobs.context import get_streamiot, set_streamiot
from portal.jobs.handlers import reports
from portal.jobs.mqtt_subscriber import Subscriber
from portal.jobs.runner import drain
from portal.models import Account, Command, Gateway, IdleRead, utcnow
from portal.services import accounts, gateways, mailboxes
from portal.services.deliveries import CommandState
from portal.streamiot import messages
from portal.streamiot.deployment import client_from_config
from portal.streamiot.emulator.broker import free_port, mosquitto_path

HOUSEHOLDS = int(os.environ.get("IOTLOCK_BENCH_HOUSEHOLDS", "100"))
ACTIVE_SHARE = 0.01
HEARTBEAT_SECONDS = 30.0
SUBSCRIBER_IDLE_SECONDS = 16.0  # covers a rescan (5 s) and a vouch (15 s)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_overrides():
    return {"VIRTUAL_GATEWAYS": False, "MQTT_RESCAN_SECONDS": Config.MQTT_RESCAN_SECONDS}


@pytest.fixture
def streamiot_process(app, tmp_path):
    """The emulator and its MQTT adapter in a process of their own; the app talks to it."""
    if mosquitto_path() is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto)")
    port, mqtt_port = free_port(), free_port()
    env = {**os.environ, "IOTLOCK_INSTANCE_DIR": str(tmp_path / "streamiot")}
    log = open(tmp_path / "streamiot.log", "wb")  # noqa: SIM115  (the child writes it)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "streamiot-emulator", "--port", str(port),
         "--db", str(tmp_path / "streamiot" / "emulator.sqlite3"), "--mqtt-port", str(mqtt_port)],
        cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", mqtt_port), timeout=0.5).close()
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the emulator did not start: {(tmp_path / 'streamiot.log').read_text()[-2000:]}")
        time.sleep(0.1)
    app.config.update(STREAMIOT_URL=f"http://127.0.0.1:{port}", STREAMIOT_READER_URL=f"http://127.0.0.1:{port}/reader",
                      STREAMIOT_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}")
    set_streamiot(app, client_from_config(app.config))
    yield
    process.terminate()
    process.wait(timeout=10)
    log.close()


class Meter:
    """Requests the portal sends to StreamIoT, and this process's CPU time."""

    def __init__(self, app):
        self.requests = 0
        get_streamiot(app).session.hooks["response"].append(self._count)

    def _count(self, response, *args, **kwargs):
        self.requests += 1

    def measure(self, fn, rounds: int = 1) -> tuple[float, float]:
        """(requests, CPU ms) of one call of `fn`, averaged over `rounds`."""
        requests, cpu = self.requests, time.process_time()
        for _ in range(rounds):
            fn()
        return (self.requests - requests) / rounds, (time.process_time() - cpu) * 1000 / rounds


def _all_due() -> None:
    """Every household due for the idle sweeps, as when their interval has passed (the sweep
    measured reads every household once, as one worker does per interval)."""
    db.session.execute(sa.delete(IdleRead))
    db.session.commit()


def _world(app, count: int) -> list[tuple[str, str, str]]:
    """`count` linked households with a gateway and a box; (gateway thing, key, channel) each."""
    for index in range(count):
        user, account = accounts.register(f"cost-{index}@example.com", "correct horse battery", f"House {index}")
        drain(app)
        gateway, _key = gateways.add_gateway(account.id, user, name="Hallway", key_mode="generate", protocol="seed")
        drain(app)
        mailboxes.add_mailbox(account.id, gateway.id, user, name="Front box", kind="mailbox", key_mode="generate")
        drain(app)
    # Settled, as after the gateways answered (no virtual gateways here): no household has
    # a command waiting, so only being looked at makes one active.
    db.session.execute(sa.update(Command).where(Command.state.in_((CommandState.SENDING, CommandState.SENT)))
                       .values(state=CommandState.CONFIRMED))
    db.session.commit()
    found = []
    for gateway in db.session.scalars(sa.select(Gateway)):
        key = crypto.decrypt(gateway.thing_key_enc, table="gateways", column="thing_key_enc", row_id=gateway.id)
        found.append((gateway.thing_id, key, gateway.channel_id))
    db.session.commit()
    assert len(found) == count
    return found


def _heartbeats(app, devices, uptime: int) -> None:
    """Every gateway's heartbeat (sent by the devices: not counted as the portal's)."""
    client = client_from_config(app.config)
    for thing_id, key, channel_id in devices:
        client.publish(channel_id, key, messages.heartbeat(thing_id, uptime))


def test_worker_cost_per_second_reader_polling_versus_mqtt(benchmark, app, streamiot_process):
    devices = _world(app, HOUSEHOLDS)
    active = max(1, round(HOUSEHOLDS * ACTIVE_SHARE))
    watched = db.session.scalars(sa.select(Account.id).limit(active)).all()
    db.session.execute(sa.update(Account).where(Account.id.in_(watched))
                       .values(watched_until=utcnow() + timedelta(hours=1)))
    db.session.commit()
    meter = Meter(app)

    # Reader polling. First reads make the cursors; then each read finds one new heartbeat.
    reports.poll_all_channels(app)
    _heartbeats(app, devices, 1)
    fast_requests, fast_cpu = meter.measure(lambda: reports.poll_active_channels(app), rounds=5)
    _all_due()
    idle_requests, idle_cpu = benchmark.pedantic(lambda: meter.measure(lambda: reports.poll_all_channels(app)),
                                                 rounds=1, iterations=1)
    reader = (fast_requests / Config.REPLY_POLL_SECONDS + idle_requests / Config.IDLE_POLL_SECONDS,
              fast_cpu / Config.REPLY_POLL_SECONDS + idle_cpu / Config.IDLE_POLL_SECONDS)

    # MQTT: the subscriber holds every household, the workers poll the held ones seldom.
    subscriber = Subscriber(app).start()
    try:
        deadline = time.monotonic() + 120
        while len(subscriber.subscriptions.ready()) < HOUSEHOLDS:
            assert time.monotonic() < deadline, "the subscriber never held every household"
            time.sleep(0.1)
        while subscriber.reads < 2 * HOUSEHOLDS:  # the catch-up reads after subscribing
            assert time.monotonic() < deadline, "the catch-up reads never ended"
            time.sleep(0.1)
        subscriber.vouch()
        time.sleep(1.0)
        idle_sub_requests, idle_sub_cpu = meter.measure(lambda: time.sleep(SUBSCRIBER_IDLE_SECONDS))
        reads_before = subscriber.reads

        # The devices publish from this thread: its CPU is theirs, not the portal's.
        cpu_before, own_before, requests_before = time.process_time(), time.thread_time(), meter.requests
        _heartbeats(app, devices, 2)
        while subscriber.reads < reads_before + HOUSEHOLDS:
            time.sleep(0.01)
        subscriber_cpu = (time.process_time() - cpu_before) - (time.thread_time() - own_before)
        wake_requests = (meter.requests - requests_before) / HOUSEHOLDS
        wake_cpu = subscriber_cpu * 1000 / HOUSEHOLDS
        mqtt_fast_requests, mqtt_fast_cpu = meter.measure(lambda: reports.poll_active_channels(app), rounds=5)
        _all_due()
        uncovered_requests, uncovered_cpu = meter.measure(lambda: reports.poll_all_channels(app))
        slow_requests, slow_cpu = meter.measure(lambda: reports.poll_mqtt_channels(app))
    finally:
        subscriber.stop()
    per_second_heartbeats = HOUSEHOLDS / HEARTBEAT_SECONDS
    mqtt = (
        mqtt_fast_requests / Config.REPLY_POLL_SECONDS + uncovered_requests / Config.IDLE_POLL_SECONDS
        + slow_requests / Config.IDLE_POLL_SECONDS_WITH_MQTT + idle_sub_requests / SUBSCRIBER_IDLE_SECONDS
        + per_second_heartbeats * wake_requests,
        mqtt_fast_cpu / Config.REPLY_POLL_SECONDS + uncovered_cpu / Config.IDLE_POLL_SECONDS
        + slow_cpu / Config.IDLE_POLL_SECONDS_WITH_MQTT + idle_sub_cpu / SUBSCRIBER_IDLE_SECONDS
        + per_second_heartbeats * wake_cpu,
    )
    rows = {
        "reader polling": reader,
        "MQTT": mqtt,
    }
    benchmark.extra_info.update(
        households=HOUSEHOLDS, active=active,
        reader_requests_per_s=round(reader[0], 2), reader_cpu_ms_per_s=round(reader[1], 2),
        mqtt_requests_per_s=round(mqtt[0], 2), mqtt_cpu_ms_per_s=round(mqtt[1], 2),
        fast_read=(fast_requests, round(fast_cpu, 2)), idle_read=(idle_requests, round(idle_cpu, 2)),
        mqtt_wake_up=(round(wake_requests, 2), round(wake_cpu, 3)), mqtt_slow_read=(slow_requests, round(slow_cpu, 2)),
        subscriber_idle_per_s=(round(idle_sub_requests / SUBSCRIBER_IDLE_SECONDS, 2),
                               round(idle_sub_cpu / SUBSCRIBER_IDLE_SECONDS, 2)),
    )
    print(f"\nworker cost with {HOUSEHOLDS} households, {active} active ({db.engine.dialect.name}):")
    print(f"  fast read {fast_requests:.0f} req / {fast_cpu:.1f} ms; idle read {idle_requests:.0f} req / "
          f"{idle_cpu:.1f} ms; MQTT wake-up {wake_requests:.2f} req / {wake_cpu:.2f} ms per message; "
          f"held households' read {slow_requests:.0f} req / {slow_cpu:.1f} ms; subscriber idle "
          f"{idle_sub_cpu / SUBSCRIBER_IDLE_SECONDS:.2f} ms/s; fast read when held {mqtt_fast_requests:.0f} req")
    for name, (requests, cpu) in rows.items():
        print(f"  {name:15} {requests:8.2f} req/s {cpu:8.2f} CPU ms/s   per household: "
              f"{requests / HOUSEHOLDS:.4f} req/s, {cpu / HOUSEHOLDS:.4f} CPU ms/s   "
              f"x10,000: {requests / HOUSEHOLDS * 10_000:,.0f} req/s, {cpu / HOUSEHOLDS * 10:,.0f} CPU s/s")
    assert mqtt[0] < reader[0]

"""The reader's idle sweep is shared by every worker process: each linked household is read
once per interval however many workers sweep (an MQTT-held one once per the long interval),
and a second worker takes its share instead of reading the same channels again."""
import threading
from collections import Counter
from datetime import timedelta

import pytest
import time_machine

from portal.jobs.context import get_streamiot
from portal.jobs.handlers import reports
from portal.jobs.runner import drain
from portal.models import utcnow
from portal.services import device_reports, mqtt_coverage
from tests.plugins.devices import DeviceKit

IDLE = 30.0  # IDLE_POLL_SECONDS
IDLE_WITH_MQTT = 300.0  # IDLE_POLL_SECONDS_WITH_MQTT


@pytest.fixture
def app_overrides():
    return {"IDLE_POLL_SECONDS": IDLE, "IDLE_POLL_SECONDS_WITH_MQTT": IDLE_WITH_MQTT}


@pytest.fixture
def households(kit, make_household, app):
    """Three linked households, each with a gateway and a box: {account id: its channels}."""
    kits = [kit]
    for n in range(2):
        user, account = make_household(f"owner-{n}@example.com", f"Street {n}")
        kits.append(DeviceKit(app, user, account))
    drain(app)
    found = {}
    for each in kits:
        gateway, mailbox = each.ready_mailbox()
        found[each.account.id] = {gateway.channel_id, mailbox.channel_id}
    return found


@pytest.fixture
def reads(app):
    """Reads of each channel from now on (the first page of the reader from the cursor)."""
    counted: Counter = Counter()
    lock = threading.Lock()

    def hook(response, *args, **kwargs):
        url = response.request.url
        if response.request.method == "GET" and "/messages?" in url and "from=" in url and "offset=0" in url:
            channel = url.rsplit("/channels/", 1)[1].split("/", 1)[0]
            with lock:
                counted[channel] += 1

    hooks = get_streamiot(app).session.hooks["response"]
    hooks.append(hook)
    yield counted
    hooks.remove(hook)


def _later(seconds: float):
    return time_machine.travel(utcnow() + timedelta(seconds=seconds))


def _every_channel(households) -> set[str]:
    return set().union(*households.values())


def test_one_sweep_reads_each_household_once_and_again_only_after_the_interval(app, households, reads):
    with _later(IDLE_WITH_MQTT + 1):  # whatever setting them up read is long past
        reports.poll_all_channels(app)
        assert reads == Counter({channel: 1 for channel in _every_channel(households)})
        reads.clear()
        reports.poll_all_channels(app)
        assert reads == Counter()
    with _later(IDLE_WITH_MQTT + IDLE / 2):
        reports.poll_all_channels(app)
        assert reads == Counter()
    with _later(IDLE_WITH_MQTT + IDLE + 2):
        reports.poll_all_channels(app)
        assert reads == Counter({channel: 1 for channel in _every_channel(households)})


def test_a_household_linked_since_the_last_sweep_is_read_at_the_next(app, households, reads, make_household):
    with _later(IDLE_WITH_MQTT + 1):
        reports.poll_all_channels(app)
    user, account = make_household("owner-new@example.com", "New Street")
    drain(app)
    newcomer = DeviceKit(app, user, account)
    gateway = newcomer.add_gateway()
    mailbox = newcomer.reload(newcomer.add_mailbox(gateway))
    gateway = newcomer.reload(gateway)
    reads.clear()
    with _later(IDLE_WITH_MQTT + 5):  # before the others are due again
        reports.poll_all_channels(app)
    assert reads == Counter({gateway.channel_id: 1, mailbox.channel_id: 1})


def test_a_household_an_mqtt_subscriber_holds_is_read_at_the_long_interval(app, households, reads):
    held = next(iter(households))
    others = _every_channel({k: v for k, v in households.items() if k != held})
    mqtt_coverage.vouch([held], seconds=3 * IDLE_WITH_MQTT)
    with _later(IDLE_WITH_MQTT + 1):
        reports.poll_all_channels(app)
        reports.poll_mqtt_channels(app)
        assert reads == Counter({channel: 1 for channel in _every_channel(households)})
    reads.clear()
    with _later(IDLE_WITH_MQTT + IDLE + 2):
        reports.poll_all_channels(app)
        reports.poll_mqtt_channels(app)
        assert reads == Counter({channel: 1 for channel in others})
    reads.clear()
    with _later(2 * IDLE_WITH_MQTT + 2):
        reports.poll_mqtt_channels(app)
        assert reads == Counter({channel: 1 for channel in households[held]})


def test_a_household_the_subscriber_stops_holding_is_due_at_the_short_interval_again(app, households, reads):
    held = next(iter(households))
    mqtt_coverage.vouch([held], seconds=3 * IDLE_WITH_MQTT)
    with _later(IDLE_WITH_MQTT + 1):
        reports.poll_mqtt_channels(app)
    mqtt_coverage.withdraw([held])
    reads.clear()
    with _later(IDLE_WITH_MQTT + IDLE + 2):
        reports.poll_all_channels(app)
    assert {channel for channel in reads if channel in households[held]} == households[held]


# Several workers at once is the PostgreSQL deployment (SQLite runs one worker).
@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_workers_sweeping_at_once_read_each_household_exactly_once(app, backend, households, reads,
                                                                       monkeypatch):
    monkeypatch.setattr(device_reports, "IDLE_BATCH", 1)  # a claim per household: the workers interleave
    errors = []
    start = threading.Barrier(2)

    def worker():
        try:
            with app.app_context():
                start.wait(10)
                reports.poll_all_channels(app)
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)

    with _later(IDLE_WITH_MQTT + 1):
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    assert reads == Counter({channel: 1 for channel in _every_channel(households)})


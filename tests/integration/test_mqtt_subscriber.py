"""Device messages by MQTT: the subscriber holds each household of its shard subscribed, a
message wakes a read of its channel, and what the read finds is applied once, by publisher,
with no periodic read of the reader (only the test of both paths runs one)."""
import subprocess
import sys

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.runner import drain
from portal.models import Account, ActivityEvent
from portal.services import deletion, device_reports, mqtt_coverage
from portal.streamiot import messages
from tests.plugins.accounts import PASSWORD
from tests.plugins.mqtt import wait_until
from tests.processes import ROOT, sigterm, worker_env


@pytest.fixture
def app_overrides():
    # Nothing here runs the worker; the huge intervals say so once more.
    return {"MQTT_RESCAN_SECONDS": 0.2, "REPLY_POLL_SECONDS": 10_000.0, "IDLE_POLL_SECONDS": 10_000.0}


def _opened(mailbox_id=None) -> list[ActivityEvent]:
    statement = sa.select(ActivityEvent).where(ActivityEvent.kind == "box.opened_pin").order_by(ActivityEvent.id)
    if mailbox_id is not None:
        statement = statement.where(ActivityEvent.mailbox_id == mailbox_id)
    return db.session.scalars(statement).all()


def _held(subscriber, account_or_id) -> bool:
    account_id = getattr(account_or_id, "id", account_or_id)
    return str(account_id) in subscriber.subscriptions.ready()


def _covered(account_id) -> bool:
    """Whether the household counts as held by a subscriber (the reader then reads it seldom)."""
    return account_id in {t.account_id for t in device_reports.channels_of_linked_households(mqtt=True)}


def _press(kit, gateway, mailbox, digits=4821):
    kit.device(gateway).publish(messages.opened_with_pin(gateway.thing_id, digits), mailbox.channel_id)


def _ready_box(kit, name="Front box"):
    gateway, mailbox = kit.ready_mailbox(name=name)
    kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    return gateway, mailbox


def test_a_keypad_press_reaches_the_activity_log_by_mqtt_without_any_periodic_read(kit, start_subscriber):
    gateway, mailbox = _ready_box(kit)
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the household's subscription")
    _press(kit, gateway, mailbox)
    [event] = wait_until(lambda: _opened(mailbox.id), "the opening in the activity log")
    assert "Grandma" in event.summary


def test_a_message_both_paths_see_is_applied_once(kit, start_subscriber):
    gateway, mailbox = _ready_box(kit)
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the household's subscription")
    _press(kit, gateway, mailbox)
    wait_until(lambda: _opened(mailbox.id), "the opening in the activity log")
    kit.poll()  # the reader's periodic read comes by as well
    kit.poll()
    assert len(_opened(mailbox.id)) == 1


def test_a_message_from_another_thing_wakes_a_read_that_still_ignores_it(kit, start_subscriber):
    gateway, mailbox = _ready_box(kit)
    api = kit.user_api()
    intruder = api.create_thing("intruder")
    api.connect([mailbox.channel_id], [intruder])
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the household's subscription")
    kit.streamiot.publish(mailbox.channel_id, api.get_thing(intruder)["key"],
                          messages.opened_with_pin(gateway.thing_id, 4821))
    _press(kit, gateway, mailbox)
    # The read that applies the gateway's press has the intruder's message too (it came first).
    [event] = wait_until(lambda: _opened(mailbox.id), "the gateway's own opening")
    assert len(_opened(mailbox.id)) == 1
    assert event.summary


def test_what_was_sent_while_the_broker_was_down_arrives_by_the_catch_up_read(kit, broker, start_subscriber):
    gateway, mailbox = _ready_box(kit)
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the household's subscription")
    broker.stop()
    wait_until(lambda: not _held(subscriber, kit.account), "the subscriber to notice the broker is gone")
    _press(kit, gateway, mailbox)  # stored by the platform, heard by nobody
    assert _opened(mailbox.id) == []
    broker.start()
    wait_until(lambda: _opened(mailbox.id), "the opening, read when the subscription came back", timeout=60)
    assert len(_opened(mailbox.id)) == 1


def test_a_household_linked_later_is_subscribed_and_one_closed_is_let_go(app, kit, make_household,
                                                                       start_subscriber):
    first_gateway, first_box = _ready_box(kit)
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the first household's subscription")

    user, account = make_household("later@example.com", "Oak Street")
    later_id = account.id
    drain(app)
    later = type(kit)(app, user, db.session.get(Account, later_id))
    gateway, mailbox = _ready_box(later)
    wait_until(lambda: _held(subscriber, later_id), "the later household's subscription")
    _press(later, gateway, mailbox)
    wait_until(lambda: _opened(mailbox.id), "the later household's opening")

    # A box added to a household already held is subscribed too.
    _gateway, second_box = later.ready_mailbox(name="Back box", gateway=gateway)
    later.add_pin(second_box, "Grandma", "4821")
    later.confirm_all(gateway)
    wait_until(lambda: _held(subscriber, later_id), "the subscription of the new box too")
    _press(later, gateway, second_box)
    wait_until(lambda: _opened(second_box.id), "the new box's opening")

    deletion.delete_account(db.session.get(type(user), user.id), PASSWORD, deletion.CONFIRM_WORD)
    drain(app)
    wait_until(lambda: not _held(subscriber, later_id) and _held(subscriber, kit.account),
               "the closed household to be let go")
    _press(kit, first_gateway, first_box)
    wait_until(lambda: _opened(first_box.id), "the first household's opening, still by MQTT")


def test_each_shard_holds_its_own_households_and_both_deliver(app, kit, make_household, start_subscriber):
    first_gateway, first_box = _ready_box(kit)
    user, account = make_household("second@example.com", "Ash Street")
    drain(app)
    second = type(kit)(app, user, db.session.get(Account, account.id))
    second_gateway, second_box = _ready_box(second)
    shards = [start_subscriber(0, 2), start_subscriber(1, 2)]
    households = [kit.account.id, account.id]
    for index, subscriber in enumerate(shards):
        mine = {str(h) for h in households if mqtt_coverage.shard_of(h, 2) == index}
        wait_until(lambda s=subscriber, m=mine: s.subscriptions.ready() == m, f"shard {index}'s households")
    _press(kit, first_gateway, first_box)
    _press(second, second_gateway, second_box)
    wait_until(lambda: _opened(first_box.id) and _opened(second_box.id), "both openings")


def test_a_held_household_is_read_at_the_slow_interval_and_let_go_when_the_subscriber_stops(kit,
                                                                                          start_subscriber):
    _ready_box(kit)
    assert {t.account_id for t in device_reports.channels_of_linked_households()} == {kit.account.id}
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the household's subscription")
    subscriber.vouch()
    db.session.expire_all()
    assert device_reports.channels_of_linked_households() == []
    assert {t.account_id for t in device_reports.channels_of_linked_households(mqtt=True)} == {kit.account.id}
    subscriber.stop()
    db.session.expire_all()
    assert device_reports.channels_of_linked_households(mqtt=True) == []
    assert {t.account_id for t in device_reports.channels_of_linked_households()} == {kit.account.id}


def test_a_press_dated_by_a_clock_never_set_is_found_when_mqtt_wakes_its_channel(kit, start_subscriber):
    gateway, mailbox = _ready_box(kit)
    subscriber = start_subscriber()
    wait_until(lambda: _held(subscriber, kit.account), "the household's subscription")
    pack = messages.opened_with_pin(gateway.thing_id, 4821)
    pack[0]["t"] = 5.0  # 1970: below every cursor, only the sweep finds it
    kit.device(gateway).publish(pack, mailbox.channel_id)
    [event] = wait_until(lambda: _opened(mailbox.id), "the opening in the activity log")
    assert "Grandma" in event.summary


def test_the_subscriber_command_runs_as_its_own_process_and_stops_on_sigterm(app, kit, broker, tmp_path):
    gateway, mailbox = _ready_box(kit)
    env = worker_env(app, tmp_path, STREAMIOT_URL="embedded", STREAMIOT_MQTT_URL=broker.url,
                     STREAMIOT_EMULATOR_DB=app.config["STREAMIOT_EMULATOR_DB"])
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "mqtt-subscriber", "--shard", "0/1"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: _covered(kit.account.id), "the subscriber process to hold the household", timeout=60)
        _press(kit, gateway, mailbox)
        wait_until(lambda: _opened(mailbox.id), "the opening, applied by the subscriber process")
    finally:
        output = sigterm(process)
    assert process.returncode == 0, output
    assert not _covered(kit.account.id)  # a stopping subscriber withdraws at once


def test_the_subscriber_command_needs_an_mqtt_adapter_and_a_real_shard(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["mqtt-subscriber"])
    assert result.exit_code != 0 and "STREAMIOT_MQTT_URL" in result.output
    app.config["STREAMIOT_MQTT_URL"] = "mqtt://127.0.0.1:1"
    result = runner.invoke(args=["mqtt-subscriber", "--shard", "2/2"])
    assert result.exit_code != 0 and "shard 2 of 2 does not exist" in result.output

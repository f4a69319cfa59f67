"""The emulator's MQTT adapter behaves as Mainflux 0.13.0's does where the portal relies on
it: a thing logs in with its id and key, hears only the channels it is connected to, and
every message sent by HTTP arrives with the same bytes on `channels/<id>/messages[/...]`."""
import json
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from portal.streamiot import messages
from portal.streamiot.mqtt import broker_address, topic_of
from tests.plugins.mqtt import wait_until


class Listener:
    """A plain MQTT client logged in as one thing, keeping what it hears."""

    def __init__(self, broker, thing_id, key):
        self.heard: list[tuple[str, bytes]] = []
        self.refused: object = None
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{thing_id[:8]}")
        self.client.username_pw_set(thing_id, key)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.heard.append((message.topic, message.payload))
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.connected = threading.Event()
        host, port = broker_address(broker.url)
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_connect(self, _client, _userdata, _flags, reason, _properties):
        if reason.is_failure:
            self.refused = reason
        self.connected.set()

    def subscribe(self, *channel_ids):
        self.subscribed.clear()
        self.client.subscribe([(topic_of(c), 1) for c in channel_ids])
        assert self.subscribed.wait(10), "no SUBACK"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listeners(broker):
    made = []

    def listen(thing_id, key):
        listener = Listener(broker, thing_id, key)
        made.append(listener)
        assert listener.connected.wait(10), "no CONNACK"
        return listener

    yield listen
    for listener in made:
        listener.close()


def _other_thing(kit, channel_id=None):
    """A thing of the household, connected to `channel_id` if given: (id, key)."""
    api = kit.user_api()
    thing_id = api.create_thing("another")
    if channel_id:
        api.connect([channel_id], [thing_id])
    return thing_id, api.get_thing(thing_id)["key"]


def test_a_thing_logs_in_with_its_id_and_key_and_a_wrong_key_is_refused(kit, listeners):
    account = kit.reload(kit.account)
    assert listeners(account.portal_thing_id, kit.portal_key()).refused is None
    assert listeners(account.portal_thing_id, "not-the-key").refused is not None
    assert listeners("not-a-thing", kit.portal_key()).refused is not None


def test_a_message_sent_by_http_arrives_with_the_same_bytes_and_its_subtopic(kit, listeners):
    gateway, mailbox = kit.ready_mailbox()
    account = kit.reload(kit.account)
    portal = listeners(account.portal_thing_id, kit.portal_key())
    portal.subscribe(mailbox.channel_id)
    pack = messages.heartbeat(gateway.thing_id, 7)
    kit.device(gateway).publish(pack, mailbox.channel_id)
    [(topic, payload)] = wait_until(lambda: portal.heard, "the message by MQTT")
    assert topic == f"channels/{mailbox.channel_id}/messages"
    assert json.loads(payload) == pack

    body = json.dumps(pack).encode()
    response = kit.streamiot.session.post(
        f"{kit.streamiot.base_url}/http/channels/{mailbox.channel_id}/messages/door/left", data=body,
        headers={"Authorization": f"Thing {kit.device(gateway).key}", "Content-Type": "application/senml+json"},
        timeout=10)
    assert response.status_code == 202
    wait_until(lambda: len(portal.heard) == 2, "the message with a subtopic")
    assert portal.heard[1] == (f"channels/{mailbox.channel_id}/messages/door/left", body)


def test_a_thing_hears_nothing_of_a_channel_it_is_not_connected_to(kit, listeners):
    gateway, mailbox = kit.ready_mailbox()
    stranger_id, stranger_key = _other_thing(kit)
    own_channel = kit.user_api().create_channel("the stranger's own")
    kit.user_api().connect([own_channel], [stranger_id])
    stranger = listeners(stranger_id, stranger_key)
    stranger.subscribe(mailbox.channel_id, own_channel)

    kit.device(gateway).publish(messages.heartbeat(gateway.thing_id, 1), mailbox.channel_id)
    kit.streamiot.publish(own_channel, stranger_key, messages.heartbeat(stranger_id, 2))
    # Per client the broker keeps the order: once the second message is there, the first
    # would have been too.
    heard = wait_until(lambda: stranger.heard, "the message of the stranger's own channel")
    assert [topic for topic, _payload in heard] == [f"channels/{own_channel}/messages"]


def test_a_thing_disconnected_from_a_channel_stops_hearing_it(kit, listeners):
    gateway, mailbox = kit.ready_mailbox()
    other_id, other_key = _other_thing(kit, mailbox.channel_id)
    kit.user_api().connect([gateway.channel_id], [other_id])
    other = listeners(other_id, other_key)
    other.subscribe(mailbox.channel_id, gateway.channel_id)
    device = kit.device(gateway)
    device.publish(messages.heartbeat(gateway.thing_id, 1), mailbox.channel_id)
    wait_until(lambda: len(other.heard) == 1, "the first message")

    kit.user_api().disconnect([mailbox.channel_id], [other_id])
    device.publish(messages.heartbeat(gateway.thing_id, 2), mailbox.channel_id)
    device.publish(messages.heartbeat(gateway.thing_id, 3), gateway.channel_id)
    wait_until(lambda: len(other.heard) >= 2, "the message on the channel still connected")
    assert [topic for topic, _payload in other.heard] == [
        f"channels/{mailbox.channel_id}/messages", f"channels/{gateway.channel_id}/messages"]

"""Every message the portal publishes over a whole lifecycle, as it went out on the wire:
the right channel, the right order, and the shape of DEVICE_PROTOCOL.md key for key."""
import json

from portal.services import commands, gateways, mailboxes, pins


def test_a_whole_lifecycle_publishes_exactly_the_protocol_messages_in_order(kit):
    published = kit.record_publishes()
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    kit.device(gateway).heartbeat()
    kit.confirm_all(gateway)
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    kit.drain()
    unlock = commands.unlock(kit.account.id, mailbox.id, kit.user)
    deadline = int(unlock.expires_at.timestamp())  # the time to live travels with it
    kit.drain()
    g, gc, gk = gateway.thing_id, gateway.channel_id, gateway.public_key
    mc, mk = mailbox.channel_id, mailbox.public_key
    mailboxes.remove_mailbox(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    kit.drain()

    expected = [
        (gc, [{"bn": f"{g}_", "n": "CONNECT", "u": "Requested", "vb": True}]),
        (gc, [{"bn": f"{g}_", "n": "REGISTER", "u": "Requested", "vb": True}]),
        (gc, [{"bn": f"{g}_", "n": "ADD", "u": "PublicKey", "vs": mk}]),
        (gc, [{"bn": f"{mc}_", "n": "Mailbox", "u": "PublicKey", "vs": mk}]),
        (mc, [{"bn": f"{g}_", "n": "AUTH", "u": "PIN", "v": 4821}]),
        (mc, [{"bn": f"{g}_", "n": "UNAUTH", "u": "PIN", "v": 4821}]),
        (mc, [{"bn": f"{g}_", "n": "UNLOCK", "u": "s", "v": deadline}]),
        (gc, [{"bn": f"{g}_", "n": "DELETE", "u": "PublicKey", "vs": mk}]),
        (gc, [{"bn": f"{gc}_", "n": "DESTRUCT", "u": "Gateway", "vs": gk}]),
    ]
    # Only the worker's own publishes are recorded (the fake device has a client of its own).
    assert [(channel, json.loads(body)) for channel, body in published] == expected
    for _channel, body in published:
        assert list(json.loads(body)[0]) == ["bn", "n", "u", list(json.loads(body)[0])[3]]  # the seed's order
    assert '"v":4821' in published[4][1]  # a PIN travels as a JSON number
    assert f'"v":{deadline}}}' in published[6][1]  # so does the deadline, in whole seconds

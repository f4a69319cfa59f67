"""StreamIoT calls through the portal's real client against the embedded emulator.

`client_from_config(app.config)` with the default STREAMIOT_URL "embedded": requests
goes through the in-process adapter to the emulator's WSGI app and its SQLite file, so
these are per-call latencies of the client + emulator without a network. The portal's
database is not involved, so they run once (on the SQLite app), not per backend.

- publish: one HEARTBEAT pack (POST /http/channels/{id}/messages as the gateway thing).
- read back: the reader page the reply reader asks for (`publisher` filter, limit 200,
  as portal.jobs.handlers.devices.read_channel) on a channel holding 100 messages.

Soft targets (median, on a 2-core development machine): publish under 5 ms, read back
under 15 ms.
"""
import uuid

import pytest

from portal.streamiot import messages
from portal.streamiot.deployment import client_from_config

from .conftest import soft_target

HELD = 100
READ_PAGE = 200  # portal.jobs.handlers.devices.READ_PAGE


@pytest.fixture
def device(sqlite_app):
    """(client, channel id, thing id, thing key): a gateway thing connected to its channel."""
    client = client_from_config(sqlite_app.config)
    email, password = f"bench-{uuid.uuid4().hex[:8]}@iotlock.invalid", uuid.uuid4().hex
    client.create_user(email, password)
    user = client.as_user(email, password)
    thing_id = user.create_thing("benchmark-gateway")
    key = user.get_thing(thing_id)["key"]
    channel_id = user.create_channel("benchmark-channel")
    user.connect([channel_id], [thing_id])
    return client, channel_id, thing_id, key


def test_streamiot_publish(benchmark, device):
    client, channel_id, thing_id, key = device
    pack = messages.heartbeat(thing_id, 42)

    benchmark(client.publish, channel_id, key, pack)

    soft_target(benchmark, 0.005)


def test_streamiot_read_back(benchmark, device):
    client, channel_id, thing_id, key = device
    for uptime in range(HELD):
        client.publish(channel_id, key, messages.heartbeat(thing_id, uptime))

    page = benchmark(client.read_messages, channel_id, thing_key=key, limit=READ_PAGE, publisher=thing_id)

    assert len(page["messages"]) == HELD
    assert page["messages"][0]["value"] == HELD - 1  # newest first: the last one published
    benchmark.extra_info.update(messages_held=HELD, page_limit=READ_PAGE)
    soft_target(benchmark, 0.015)

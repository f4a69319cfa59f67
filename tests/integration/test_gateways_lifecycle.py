"""Gateways through the services, against the embedded StreamIoT emulator and the real job
runner: add (generated or pasted key), set-up step by step, the messages it gets, its
states, rename, the settings download, and removal until nothing is left in StreamIoT."""
import base64
import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from portal import crypto
from portal.extensions import db
from portal.models import Account, ActivityEvent, Command, Gateway, Mailbox, Membership, utcnow
from portal.services import dashboard, gateways
from portal.services.errors import Conflict, ValidationFailed
from tests.plugins.accounts import PASSWORD, csrf_from


def _events(account, kind=None):
    stmt = sa.select(ActivityEvent).where(ActivityEvent.account_id == account.id).order_by(ActivityEvent.id)
    if kind:
        stmt = stmt.where(ActivityEvent.kind == kind)
    return db.session.scalars(stmt).all()


def _record(message):
    """The SenML record behind a reader message, in the shape DEVICE_PROTOCOL.md writes it."""
    from portal.streamiot import messages

    base, name = messages.split_name(message["name"])
    return messages.record_from_message(message, base)


# --- adding and setting up ------------------------------------------------------------------

def test_a_new_gateway_is_queued_then_set_up_step_by_step(kit):
    gateway = kit.add_gateway("Hallway", run=False)
    assert gateway.status == "provisioning"
    assert gateway.progress == {}
    assert [(c.action, c.state) for c in kit.commands(gateway)] == [("CONNECT", "queued"), ("REGISTER", "queued")]
    assert dashboard.gateway_shown(gateway).label == "Setting up"

    kit.drain()
    gateway = kit.reload(gateway)
    assert gateway.status == "active"
    assert gateway.progress == {"thing": True, "channel": True, "connect": True, "key": True,
                                "connect_sent": True, "register_sent": True}
    assert gateway.last_error is None
    shown = dashboard.gateway_shown(gateway)
    assert (shown.key, shown.label, shown.live) == ("waiting", "Waiting for the device", True)


def test_the_gateway_exists_in_streamiot_under_its_exact_names_with_both_things_connected(kit):
    gateway = kit.add_gateway()
    api = kit.user_api()
    thing = api.get_thing(gateway.thing_id)
    assert thing["name"] == f"iotlock-gw-{gateway.id}"
    assert api.get_channel(gateway.channel_id)["name"] == f"iotlock-gw-{gateway.id}"
    connected = {t["id"] for t in api.list_channel_things(gateway.channel_id)["things"]}
    assert connected == {gateway.thing_id, kit.account.portal_thing_id}
    # The thing key is stored encrypted, bound to this row.
    assert thing["key"].encode() not in gateway.thing_key_enc
    assert crypto.decrypt(gateway.thing_key_enc, table="gateways", column="thing_key_enc",
                          row_id=gateway.id) == thing["key"]


def test_connect_then_register_are_published_as_the_portal_thing_exactly_as_the_protocol_says(kit):
    gateway = kit.add_gateway()
    published = kit.published_by_portal(gateway.channel_id)
    g = gateway.thing_id
    assert [_record(m) for m in published] == [
        {"bn": f"{g}_", "n": "CONNECT", "u": "Requested", "vb": True},
        {"bn": f"{g}_", "n": "REGISTER", "u": "Requested", "vb": True},
    ]
    assert all(m["publisher"] == kit.account.portal_thing_id for m in published)
    assert [(c.action, c.state, c.channel_id) for c in kit.commands(gateway)] == [
        ("CONNECT", "sent", gateway.channel_id), ("REGISTER", "sent", gateway.channel_id)]


def test_a_retried_step_finds_the_thing_and_channel_by_exact_name_instead_of_making_twins(kit):
    gateway = kit.add_gateway(run=False)
    api = kit.user_api()
    # As if an earlier attempt created them and its answer was lost.
    thing_id = api.create_thing(f"iotlock-gw-{gateway.id}")
    channel_id = api.create_channel(f"iotlock-gw-{gateway.id}")
    api.create_thing(f"iotlock-gw-{gateway.id}-x")  # the substring filter would match this too
    kit.drain()
    gateway = kit.reload(gateway)
    assert (gateway.thing_id, gateway.channel_id) == (thing_id, channel_id)
    assert len(api.find_things(f"iotlock-gw-{gateway.id}")) == 1
    assert len(api.find_channels(f"iotlock-gw-{gateway.id}")) == 1


def test_set_up_waits_for_the_household_link_before_touching_streamiot(app, make_household):
    from portal.jobs.runner import drain, run_due_jobs
    from tests.plugins.devices import DeviceKit

    user, account = make_household("new@example.com", "Fresh House")
    kit = DeviceKit(app, user, account)
    gateway = kit.add_gateway(run=False)
    # Only the gateway's job may run: the household link is not there yet.
    db.session.execute(sa.text("UPDATE jobs SET run_after = :later WHERE kind = 'link_household'"),
                       {"later": utcnow() + timedelta(hours=1)})
    db.session.commit()
    run_due_jobs(app, limit=1)
    gateway = kit.reload(gateway)
    assert gateway.status == "provisioning"
    assert gateway.thing_id is None
    assert "StreamIoT link" in gateway.last_error
    db.session.execute(sa.text("UPDATE jobs SET run_after = :now"), {"now": utcnow()})
    db.session.commit()
    drain(app)
    gateway = kit.reload(gateway)
    assert gateway.status == "active" and gateway.last_error is None


def test_pasted_keys_in_base64_or_pem_are_kept_as_base64_of_the_raw_key(kit):
    private = X25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    from_b64 = kit.add_gateway("One", key_mode="paste", public_key=base64.b64encode(raw).decode(), run=False)
    from_pem = kit.add_gateway("Two", key_mode="paste", public_key=pem, run=False)
    assert from_b64.public_key == from_pem.public_key == base64.b64encode(raw).decode()
    assert not from_b64.key_generated and kit.last_private_key is None


def test_a_generated_key_pair_hands_back_the_private_key_and_stores_only_the_public_one(kit):
    gateway = kit.add_gateway(run=False)
    assert gateway.key_generated
    assert crypto.public_from_private(kit.last_private_key) == gateway.public_key
    row = db.session.execute(sa.select(Gateway.__table__).where(Gateway.id == gateway.id)).mappings().one()
    assert kit.last_private_key not in repr(dict(row))


@pytest.mark.parametrize(
    "name,key_mode,key,field,why",
    [
        ("", "generate", None, "name", "Give the gateway a name"),
        ("x" * 81, "generate", None, "name", "under 80"),
        ("Hall", "paste", "", "public_key", "Paste the device's public key"),
        ("Hall", "paste", "not a key!", "public_key", "Not valid base64"),
        ("Hall", "paste", base64.b64encode(b"short").decode(), "public_key", "32 bytes; this one is 5"),
        ("Hall", "paste",
         Ed25519PrivateKey.generate().public_key().public_bytes(
             serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
         "public_key", "not an X25519 key"),
        ("Hall", "borrow", None, "key_mode", "Choose whether"),
    ],
)
def test_bad_input_is_refused_on_its_field_and_nothing_is_saved(kit, name, key_mode, key, field, why):
    with pytest.raises(ValidationFailed) as refused:
        gateways.add_gateway(kit.account.id, kit.user, name=name, key_mode=key_mode, public_key=key)
    assert refused.value.field == field
    assert why in refused.value.message
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Gateway)) == 0


def test_adding_is_recorded_in_the_activity_log(kit):
    kit.add_gateway("Hallway", run=False)
    [event] = _events(kit.account, "gateway.added")
    assert event.summary == "Added gateway “Hallway”"
    assert event.actor_user_id == kit.user.id


# --- states ---------------------------------------------------------------------------------

def test_a_heartbeat_brings_it_online_and_silence_makes_it_offline(kit, app):
    gateway = kit.add_gateway()
    kit.device(gateway).heartbeat()
    kit.poll()
    gateway = kit.reload(gateway)
    assert gateway.last_heartbeat_at is not None
    assert dashboard.gateway_shown(gateway).label == "Online"
    gateway.last_heartbeat_at = utcnow() - timedelta(seconds=app.config["HEARTBEAT_WINDOW_SECONDS"] + 5)
    db.session.commit()
    shown = dashboard.gateway_shown(kit.reload(gateway))
    assert (shown.key, shown.label, shown.live) == ("offline", "Offline", False)


def test_a_heartbeat_from_another_thing_does_not_count(kit):
    gateway = kit.add_gateway()
    api = kit.user_api()
    intruder = api.create_thing("intruder")
    api.connect([gateway.channel_id], [intruder])
    key = api.get_thing(intruder)["key"]
    from portal.streamiot import messages

    # It even claims to be the gateway in its record name.
    kit.streamiot.publish(gateway.channel_id, key, messages.heartbeat(gateway.thing_id, 5))
    kit.poll()
    assert kit.reload(gateway).last_heartbeat_at is None


def test_rename_changes_the_name_and_is_recorded(kit):
    gateway = kit.add_gateway("Hallway", run=False)
    gateways.rename_gateway(kit.account.id, gateway.id, kit.user, "  Front   hall ")
    assert kit.reload(gateway).name == "Front hall"
    [event] = _events(kit.account, "gateway.renamed")
    assert event.summary == "Renamed gateway “Hallway” to “Front hall”"
    with pytest.raises(ValidationFailed) as refused:
        gateways.rename_gateway(kit.account.id, gateway.id, kit.user, " ")
    assert refused.value.field == "name"


# --- the settings file ----------------------------------------------------------------------

def _download(client, gateway_id, password=PASSWORD):
    page = client.get(f"/gateways/{gateway_id}/settings").get_data(as_text=True)
    return client.post(f"/gateways/{gateway_id}/settings/download",
                       data={"csrf_token": csrf_from(page), "password": password})


def test_settings_ask_for_the_password_on_every_download(kit, member_client):
    """The login (and its re-authentication window) never counts: each download asks."""
    gateway = kit.add_gateway()
    page = member_client.get(f"/gateways/{gateway.id}/settings").get_data(as_text=True)
    assert "Your password" in page and "Download settings file" in page

    no_password = member_client.post(f"/gateways/{gateway.id}/settings/download", data={"csrf_token": csrf_from(page)})
    assert no_password.status_code == 200 and no_password.mimetype == "text/html"
    assert "Enter your password" in no_password.get_data(as_text=True)

    wrong = _download(member_client, gateway.id, "not it at all")
    assert wrong.status_code == 200 and wrong.mimetype == "text/html"
    assert "That is not your password" in wrong.get_data(as_text=True)

    first = _download(member_client, gateway.id)
    assert first.status_code == 200 and first.mimetype == "application/json"
    # Straight after a right password, the next download still needs it.
    again = member_client.post(f"/gateways/{gateway.id}/settings/download", data={"csrf_token": csrf_from(page)})
    assert again.mimetype == "text/html" and "Enter your password" in again.get_data(as_text=True)
    second = _download(member_client, gateway.id)
    assert second.mimetype == "application/json"


def test_the_settings_file_holds_what_the_gateway_needs_and_the_private_key_only_once(kit, member_client):
    page = member_client.get("/gateways/new").get_data(as_text=True)
    response = member_client.post("/gateways/new", data={"csrf_token": csrf_from(page), "name": "Hall",
                                                         "key_mode": "generate"})
    gateway_id = response.headers["Location"].rsplit("/", 1)[-1]
    kit.drain()
    gateway = db.session.get(Gateway, uuid.UUID(gateway_id))
    page = member_client.get(f"/gateways/{gateway_id}/settings").get_data(as_text=True)
    assert "Your next download includes the private key" in page

    first = _download(member_client, gateway_id)
    assert first.status_code == 200
    assert first.headers["Content-Disposition"] == 'attachment; filename="iotlock-hall.json"'
    settings = json.loads(first.get_data(as_text=True))
    api = kit.user_api()
    assert settings == {
        "streamiot_url": "http://streamiot.embedded",
        "streamiot_reader_url": "http://streamiot.embedded/reader",
        "thing_id": gateway.thing_id,
        "thing_key": api.get_thing(gateway.thing_id)["key"],
        "channel_id": gateway.channel_id,
        "public_key": gateway.public_key,
        "portal_thing_id": db.session.get(Account, kit.account.id).portal_thing_id,
        "protocol": "sealed",
        "portal_public_key": db.session.get(Account, kit.account.id).link_public_key,
        "private_key": settings["private_key"],
    }
    assert len(settings["portal_public_key"]) == 44
    assert crypto.public_from_private(settings["private_key"]) == gateway.public_key

    second = _download(member_client, gateway_id)
    assert "private_key" not in json.loads(second.get_data(as_text=True))
    events = _events(kit.account, "gateway.settings_viewed")
    assert [e.summary for e in events] == ["Downloaded the settings of gateway “Hall” with its private key",
                                           "Downloaded the settings of gateway “Hall”"]
    assert all(settings["thing_key"] not in e.summary + json.dumps(e.details) for e in _events(kit.account))


def test_a_new_key_pair_goes_into_the_next_download(kit, member_client):
    gateway = kit.add_gateway(key_mode="paste", public_key=crypto.generate_keypair()[0])
    page = member_client.get(f"/gateways/{gateway.id}/settings").get_data(as_text=True)
    rotated = member_client.post(f"/gateways/{gateway.id}/new-key", data={"csrf_token": csrf_from(page)})
    assert rotated.status_code == 303
    settings = json.loads(_download(member_client, gateway.id).get_data(as_text=True))
    gateway = kit.reload(gateway)
    assert gateway.key_generated
    assert crypto.public_from_private(settings["private_key"]) == settings["public_key"] == gateway.public_key


def test_settings_are_refused_until_the_gateway_exists_in_streamiot(kit):
    gateway = kit.add_gateway(run=False)
    membership = db.session.scalars(sa.select(Membership).where(Membership.user_id == kit.user.id)).one()
    with pytest.raises(Conflict):
        gateways.device_settings(membership, gateway.id, kit.user, password=PASSWORD)


# --- removal --------------------------------------------------------------------------------

def test_removing_sends_destruct_then_deletes_channels_and_thing_and_the_rows(kit):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox)
    gateway_id, gc, gk, mailbox_id = gateway.id, gateway.channel_id, gateway.public_key, mailbox.id
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    gateway = kit.reload(gateway)
    assert gateway.status == "removing"
    assert kit.reload(mailbox).status == "removing"
    assert dashboard.gateway_shown(gateway).label == "Removing"

    published = kit.record_publishes()
    kit.drain()
    # The gateway channel is gone afterwards, so the pack is checked as it went out.
    assert [(channel, json.loads(body)) for channel, body in published] == [
        (gc, [{"bn": f"{gc}_", "n": "DESTRUCT", "u": "Gateway", "vs": gk}])]
    api = kit.user_api()
    assert api.find_things(f"iotlock-gw-{gateway_id}") == []
    assert api.find_channels(f"iotlock-gw-{gateway_id}") == []
    assert api.find_channels(f"iotlock-mb-{mailbox_id}") == []
    db.session.expire_all()
    assert db.session.get(Gateway, gateway_id) is None
    assert db.session.get(Mailbox, mailbox_id) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Command)) == 0
    assert [e.summary for e in _events(kit.account, "gateway.removed")] == [
        "Removed gateway “Hallway” and its boxes"]


def test_objects_already_deleted_in_streamiot_count_as_done(kit):
    gateway, mailbox = kit.ready_mailbox()
    api = kit.user_api()
    api.delete_channel(mailbox.channel_id)
    api.delete_thing(gateway.thing_id)
    gateway_id = gateway.id
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    kit.drain()
    db.session.expire_all()
    assert db.session.get(Gateway, gateway_id) is None
    assert api.find_channels(f"iotlock-gw-{gateway_id}") == []


def test_removal_withdraws_changes_that_were_not_sent(kit, app):
    from portal.jobs.runner import run_due_jobs

    gateway, mailbox = kit.ready_mailbox()
    gateway_id = gateway.id
    kit.add_pin(mailbox, run=False)
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    [auth] = kit.commands(gateway, action="AUTH")
    assert auth.state == "withdrawn"
    run_due_jobs(app, limit=1)  # the AUTH's job: it finds its command withdrawn
    assert not [m for m in kit.published_by_portal(mailbox.channel_id) if m["name"].endswith("_AUTH")]
    kit.drain()
    assert db.session.get(Gateway, gateway_id) is None

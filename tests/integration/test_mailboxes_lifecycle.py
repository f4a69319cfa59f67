"""Boxes on a gateway: their channel, ADD then Mailbox exactly as the protocol says, their
states, a gateway that refuses one, rename, removal, and the keypad without virtual gateways."""
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import ActivityEvent, Mailbox
from portal.services import dashboard, gateways, mailboxes
from portal.services.errors import Conflict, ValidationFailed


def _records(kit, channel_id, name):
    from portal.streamiot import messages

    found = []
    for message in kit.published_by_portal(channel_id):
        base, n = messages.split_name(message["name"])
        if n == name:
            found.append(messages.record_from_message(message, base))
    return found


def test_a_new_box_gets_its_channel_with_the_gateway_and_the_portal_connected(kit):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway, "Front box", kind="parcel_box")
    assert mailbox.status == "active"
    assert mailbox.progress == {"channel": True, "connect": True, "add_sent": True, "mailbox_sent": True}
    api = kit.user_api()
    assert api.get_channel(mailbox.channel_id)["name"] == f"iotlock-mb-{mailbox.id}"
    connected = {t["id"] for t in api.list_channel_things(mailbox.channel_id)["things"]}
    assert connected == {gateway.thing_id, kit.account.portal_thing_id}
    assert mailbox.kind_label == "Parcel box"


def test_add_then_mailbox_go_out_on_the_gateway_channel_exactly_as_the_protocol_says(kit):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    g, mc, mk = gateway.thing_id, mailbox.channel_id, mailbox.public_key
    sent = [m for m in kit.published_by_portal(gateway.channel_id)
            if m["name"].endswith(("_ADD", "_Mailbox"))]
    assert [m["name"] for m in sent] == [f"{g}_ADD", f"{mc}_Mailbox"]  # ADD first, then Mailbox
    assert _records(kit, gateway.channel_id, "ADD") == [{"bn": f"{g}_", "n": "ADD", "u": "PublicKey", "vs": mk}]
    assert _records(kit, gateway.channel_id, "Mailbox") == [
        {"bn": f"{mc}_", "n": "Mailbox", "u": "PublicKey", "vs": mk}]


def test_the_box_is_ready_once_the_gateway_confirms_its_registration(kit):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    shown = dashboard.mailbox_shown(mailbox)
    assert (shown.label, shown.live) == ("Waiting for the gateway to confirm", True)
    kit.confirm_all(gateway)
    mailbox = kit.reload(mailbox)
    assert dashboard.mailbox_shown(mailbox).label == "Ready"
    assert [(c.action, c.state) for c in kit.commands(mailbox=mailbox)] == [("ADD", "confirmed"),
                                                                          ("Mailbox", "confirmed")]


def test_a_gateway_that_refuses_the_box_marks_it_failed_and_retry_sends_it_again(kit):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    add = kit.command(gateway, "ADD")
    kit.device(gateway).answer(add, done=False, reason="mailbox slots full")
    kit.poll()
    mailbox = kit.reload(mailbox)
    assert (mailbox.status, mailbox.last_error) == ("failed", "mailbox slots full")
    assert dashboard.mailbox_shown(mailbox).label == "Set-up failed"

    mailboxes.retry_mailbox(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    assert [(c.action, c.state) for c in kit.commands(mailbox=mailbox)] == [("ADD", "sent"), ("Mailbox", "sent")]
    assert len(_records(kit, gateway.channel_id, "ADD")) == 2
    kit.confirm_all(gateway)
    assert dashboard.mailbox_shown(kit.reload(mailbox)).label == "Ready"


@pytest.mark.parametrize(
    "changes,field,why",
    [
        ({"name": ""}, "name", "Give the box a name"),
        ({"kind": "fridge"}, "kind", "what kind of box"),
        ({"key_mode": "paste", "public_key": "zzz"}, "public_key", "Not valid base64"),
    ],
)
def test_bad_input_is_refused_on_its_field(kit, changes, field, why):
    gateway = kit.add_gateway(run=False)
    values = {"name": "Front box", "kind": "mailbox", "key_mode": "generate", "public_key": None, **changes}
    with pytest.raises(ValidationFailed) as refused:
        mailboxes.add_mailbox(kit.account.id, gateway.id, kit.user, **values)
    assert refused.value.field == field and why in refused.value.message


def test_a_key_already_used_on_the_gateway_is_refused(kit):
    gateway = kit.add_gateway(run=False)
    public, _ = crypto.generate_keypair()
    kit.add_mailbox(gateway, "One", key_mode="paste", public_key=public, run=False)
    with pytest.raises(ValidationFailed) as refused:
        mailboxes.add_mailbox(kit.account.id, gateway.id, kit.user, name="Two", kind="mailbox",
                              key_mode="paste", public_key=public)
    assert refused.value.field == "public_key" and "“One”" in refused.value.message
    with pytest.raises(ValidationFailed) as refused:
        mailboxes.add_mailbox(kit.account.id, gateway.id, kit.user, name="Three", kind="mailbox",
                              key_mode="paste", public_key=gateway.public_key)
    assert "gateway's own key" in refused.value.message


def test_no_box_can_be_added_to_a_gateway_being_removed(kit):
    gateway = kit.add_gateway()
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    with pytest.raises(Conflict):
        mailboxes.add_mailbox(kit.account.id, gateway.id, kit.user, name="Late", kind="mailbox", key_mode="generate")


def test_rename_is_recorded(kit):
    gateway = kit.add_gateway(run=False)
    mailbox = kit.add_mailbox(gateway, "Front box", run=False)
    mailboxes.rename_mailbox(kit.account.id, mailbox.id, kit.user, "Back gate")
    assert kit.reload(mailbox).name == "Back gate"
    assert db.session.scalar(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "mailbox.renamed")) == \
        "Renamed “Front box” to “Back gate”"


def test_removing_sends_delete_then_deletes_the_channel_and_the_row(kit):
    gateway, mailbox = kit.ready_mailbox()
    mailbox_id, mk = mailbox.id, mailbox.public_key
    mailboxes.remove_mailbox(kit.account.id, mailbox.id, kit.user)
    assert dashboard.mailbox_shown(kit.reload(mailbox)).label == "Removing"
    kit.drain()
    assert _records(kit, gateway.channel_id, "DELETE") == [
        {"bn": f"{gateway.thing_id}_", "n": "DELETE", "u": "PublicKey", "vs": mk}]
    assert kit.user_api().find_channels(f"iotlock-mb-{mailbox_id}") == []
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox_id) is None
    # The gateway and its own channel stay.
    assert kit.user_api().get_channel(gateway.channel_id)["name"] == f"iotlock-gw-{gateway.id}"


def test_removing_a_box_withdraws_its_unsent_pin_changes(kit, app):
    from portal.jobs.runner import run_due_jobs

    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, run=False)
    mailboxes.remove_mailbox(kit.account.id, mailbox.id, kit.user)
    [auth] = kit.commands(mailbox=mailbox, action="AUTH")
    assert auth.state == "withdrawn"
    run_due_jobs(app, limit=1)
    assert _records(kit, mailbox.channel_id, "AUTH") == []


def test_the_keypad_needs_virtual_gateways(kit):
    gateway, mailbox = kit.ready_mailbox()
    with pytest.raises(Conflict) as refused:
        mailboxes.press_keypad(kit.account.id, mailbox.id, "4821")
    assert "virtual gateways" in refused.value.message
    with pytest.raises(ValidationFailed):
        mailboxes.press_keypad(kit.account.id, mailbox.id, "48x1")


def test_the_add_form_shows_each_refusal_on_its_field(kit, member_client):
    from tests.plugins.accounts import csrf_from

    gateway = kit.add_gateway(run=False)
    page = member_client.get(f"/mailboxes/new/{gateway.id}").get_data(as_text=True)
    response = member_client.post(f"/mailboxes/new/{gateway.id}", data={
        "csrf_token": csrf_from(page), "name": "Front", "kind": "mailbox", "key_mode": "paste",
        "public_key": "AAAA"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'id="public_key-error"' in body and "32 bytes; this one is 3" in body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox)) == 0


def test_a_generated_box_key_is_downloaded_once_behind_the_password_check(kit, member_client):
    from portal.models import LoginSession, utcnow
    from tests.plugins.accounts import PASSWORD, csrf_from

    gateway = kit.add_gateway()
    page = member_client.get(f"/mailboxes/new/{gateway.id}").get_data(as_text=True)
    created = member_client.post(f"/mailboxes/new/{gateway.id}", data={
        "csrf_token": csrf_from(page), "name": "Safe", "kind": "gun_safe", "key_mode": "generate"})
    mailbox_id = created.headers["Location"].rsplit("/", 1)[-1]
    page = member_client.get(f"/mailboxes/{mailbox_id}").get_data(as_text=True)
    assert "IoTLock made this box’s key pair" in page

    for login in db.session.scalars(sa.select(LoginSession)):
        login.reauthenticated_at = utcnow() - timedelta(minutes=10)
    db.session.commit()
    asked = member_client.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    assert "Confirm it’s you" in asked
    member_client.post(f"/mailboxes/{mailbox_id}/key", data={"csrf_token": csrf_from(asked), "password": PASSWORD})
    ready = member_client.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    assert "Download the key file" in ready
    download = member_client.post(f"/mailboxes/{mailbox_id}/key/download", data={"csrf_token": csrf_from(ready)})
    document = download.get_json(force=True)
    mailbox = db.session.get(Mailbox, uuid.UUID(mailbox_id))
    assert document["public_key"] == mailbox.public_key
    assert crypto.public_from_private(document["private_key"]) == mailbox.public_key
    again = member_client.post(f"/mailboxes/{mailbox_id}/key/download", data={"csrf_token": csrf_from(ready)})
    assert again.status_code == 303  # gone: offered once
    assert "IoTLock made this box’s key pair" not in member_client.get(f"/mailboxes/{mailbox_id}").get_data(
        as_text=True)
    assert db.session.scalar(sa.select(ActivityEvent.summary).where(
        ActivityEvent.kind == "mailbox.key_downloaded")) == "Downloaded the private key of “Safe”"


def test_rename_and_remove_work_as_plain_forms(kit, member_client):
    from tests.plugins.accounts import csrf_from

    gateway, mailbox = kit.ready_mailbox()
    page = member_client.get(f"/mailboxes/{mailbox.id}/rename").get_data(as_text=True)
    assert 'value="Front box"' in page
    empty = member_client.post(f"/mailboxes/{mailbox.id}/rename", data={"csrf_token": csrf_from(page), "name": ""})
    assert empty.status_code == 200 and "Enter a name" in empty.get_data(as_text=True)
    renamed = member_client.post(f"/mailboxes/{mailbox.id}/rename",
                                 data={"csrf_token": csrf_from(page), "name": "Back gate"})
    assert renamed.status_code == 303 and kit.reload(mailbox).name == "Back gate"
    confirm = member_client.get(f"/mailboxes/{mailbox.id}/remove").get_data(as_text=True)
    assert "Remove “Back gate”?" in confirm
    removed = member_client.post(f"/mailboxes/{mailbox.id}/remove", data={"csrf_token": csrf_from(confirm)})
    assert removed.status_code == 303 and removed.headers["Location"].endswith(f"/gateways/{gateway.id}")
    assert kit.reload(mailbox).status == "removing"

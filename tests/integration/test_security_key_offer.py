"""A private key IoTLock made is kept encrypted server-side for the member who made it
(issue 11): it survives logging out and in, is downloadable once (a replayed cookie or a
second racing download gets nothing), is never shown to another member, and can be
discarded. Removing the device drops it."""
import json
import uuid

import sqlalchemy as sa

from portal.extensions import db
from portal.models import KeyOffer, Mailbox
from portal.services import key_offers
from tests.plugins.accounts import PASSWORD, Auth, csrf_from


def _add(client, path, **data):
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(page), **data})


def _new_box(client, gateway) -> str:
    created = _add(client, f"/mailboxes/new/{gateway.id}", name="Safe", kind="gun_safe", key_mode="generate")
    return created.headers["Location"].rsplit("/", 1)[-1]


def _download_box_key(client, mailbox_id):
    page = client.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    if "Confirm it’s you" in page:
        page = _add(client, f"/mailboxes/{mailbox_id}/key", password=PASSWORD)
        page = client.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    token = csrf_from(page)
    return client.post(f"/mailboxes/{mailbox_id}/key/download", data={"csrf_token": token})


def _box_offers():
    return db.session.scalars(sa.select(KeyOffer).where(KeyOffer.device_kind == "mailbox")).all()


def _relogin(client, email):
    Auth(client).logout()
    assert Auth(client).login(email).status_code == 302


def test_the_key_is_stored_encrypted_not_in_the_cookie(kit, member_client):
    gateway = kit.add_gateway()
    mailbox_id = _new_box(member_client, gateway)
    (offer,) = _box_offers()
    assert offer.user_id == kit.user.id and str(offer.device_id) == mailbox_id
    assert b"private" not in offer.private_key_enc and len(offer.private_key_enc) > 40
    assert "held_private_keys" not in member_client.get_cookie("session").value


def test_a_box_key_survives_logout_and_downloads_once_after_login(kit, member_client):
    gateway = kit.add_gateway()
    mailbox_id = _new_box(member_client, gateway)
    _relogin(member_client, kit.user.email)
    assert "Download it now" in member_client.get(f"/mailboxes/{mailbox_id}").get_data(as_text=True)
    before = member_client.get_cookie("session").value
    first = _download_box_key(member_client, mailbox_id)
    assert "private_key" in first.get_json(force=True)
    member_client.set_cookie("session", before)  # a cookie from before the download
    again = _download_box_key(member_client, mailbox_id)
    assert again.status_code == 303 and "private_key" not in again.get_data(as_text=True)
    assert "already downloaded" in member_client.get(again.headers["Location"]).get_data(as_text=True)
    assert _box_offers() == []


def test_a_gateway_key_survives_logout_and_is_in_one_settings_download(kit, member_client):
    created = _add(member_client, "/gateways/new", name="Hall", key_mode="generate")
    gateway_id = created.headers["Location"].rsplit("/", 1)[-1]
    kit.drain()
    _relogin(member_client, kit.user.email)
    page = member_client.get(f"/gateways/{gateway_id}/settings").get_data(as_text=True)
    assert "Your next download includes the private key" in page
    token = csrf_from(page)
    first = member_client.post(f"/gateways/{gateway_id}/settings/download",
                               data={"csrf_token": token, "password": PASSWORD})
    assert "private_key" in json.loads(first.get_data(as_text=True))
    second = member_client.post(f"/gateways/{gateway_id}/settings/download",
                                data={"csrf_token": token, "password": PASSWORD})
    assert "private_key" not in json.loads(second.get_data(as_text=True))


def test_another_member_never_sees_nor_downloads_it(app, kit, member_client, add_member):
    gateway = kit.add_gateway()
    mailbox_id = _new_box(member_client, gateway)
    add_member(kit.account, "other@example.com")
    other = app.test_client()
    assert Auth(other).login("other@example.com").status_code == 302
    assert "Download it now" not in other.get(f"/mailboxes/{mailbox_id}").get_data(as_text=True)
    assert "There is no private key for you" in other.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    refused = _download_box_key(other, mailbox_id)
    assert refused.status_code == 303 and "private_key" not in refused.get_data(as_text=True)
    token = csrf_from(other.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True))
    other.post(f"/mailboxes/{mailbox_id}/key/discard", data={"csrf_token": token})  # not theirs to discard
    assert "private_key" in _download_box_key(member_client, mailbox_id).get_json(force=True)


def test_discard_deletes_it(kit, member_client):
    gateway = kit.add_gateway()
    mailbox_id = _new_box(member_client, gateway)
    page = member_client.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    assert "Discard" in page
    discarded = member_client.post(f"/mailboxes/{mailbox_id}/key/discard", data={"csrf_token": csrf_from(page)})
    assert discarded.status_code == 303
    assert "was discarded" in member_client.get(discarded.headers["Location"]).get_data(as_text=True)
    assert _box_offers() == []
    assert "Download it now" not in member_client.get(f"/mailboxes/{mailbox_id}").get_data(as_text=True)
    # Without the CSRF token nothing happens.
    assert member_client.post(f"/mailboxes/{mailbox_id}/key/discard").status_code == 400


def test_of_two_downloads_of_one_offer_only_one_takes_it(kit, member_client):
    gateway = kit.add_gateway()
    mailbox_id = _new_box(member_client, gateway)
    public_key = db.session.scalar(sa.select(Mailbox.public_key).where(Mailbox.id == uuid.UUID(mailbox_id)))
    (offer,) = _box_offers()
    first = key_offers.take(kit.user.id, "mailbox", offer.device_id, public_key)
    second = key_offers.take(kit.user.id, "mailbox", offer.device_id, public_key)
    assert first is not None and second is None
    db.session.commit()
    assert not key_offers.is_offered(kit.user.id, "mailbox", offer.device_id)


def test_the_key_does_not_decrypt_for_another_member(kit, member_client, add_member):
    gateway = kit.add_gateway()
    _new_box(member_client, gateway)
    other, _ = add_member(kit.account, "other@example.com")
    (offer,) = _box_offers()
    offer.user_id = other.id  # moved to another member in the database
    db.session.commit()
    assert key_offers.take(other.id, "mailbox", offer.device_id, "any") is None


def test_removing_the_box_drops_its_key(kit, member_client):
    gateway = kit.add_gateway()
    mailbox_id = _new_box(member_client, gateway)
    page = member_client.get(f"/mailboxes/{mailbox_id}/remove").get_data(as_text=True)
    member_client.post(f"/mailboxes/{mailbox_id}/remove", data={"csrf_token": csrf_from(page)})
    assert _box_offers() == []

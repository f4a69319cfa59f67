"""A private key IoTLock made is offered once: the first download closes the offer on the
server, so replaying the session cookie from before the download gets a refusal, not the
key; and of two downloads racing, one gets it."""
import json

import sqlalchemy as sa

from portal.extensions import db
from portal.models import KeyOffer, LoginSession
from portal.services import key_offers
from tests.plugins.accounts import PASSWORD, csrf_from


def _session_cookie(client) -> str:
    return client.get_cookie("session").value


def _add(client, path, **data):
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(page), **data})


def test_a_replayed_cookie_does_not_download_a_box_key_again(kit, member_client):
    gateway = kit.add_gateway()
    created = _add(member_client, f"/mailboxes/new/{gateway.id}", name="Safe", kind="gun_safe", key_mode="generate")
    mailbox_id = created.headers["Location"].rsplit("/", 1)[-1]
    page = member_client.get(f"/mailboxes/{mailbox_id}/key").get_data(as_text=True)
    assert "Download the key file" in page
    token = csrf_from(page)
    before = _session_cookie(member_client)

    first = member_client.post(f"/mailboxes/{mailbox_id}/key/download", data={"csrf_token": token})
    assert "private_key" in first.get_json(force=True)

    member_client.set_cookie("session", before)  # the cookie from before the download
    replay = member_client.post(f"/mailboxes/{mailbox_id}/key/download", data={"csrf_token": token})
    assert replay.status_code == 303
    assert "private_key" not in replay.get_data(as_text=True)
    shown = member_client.get(replay.headers["Location"]).get_data(as_text=True)
    assert "The private key was already downloaded" in shown
    member_client.set_cookie("session", before)
    assert "There is no private key to download" in member_client.get(f"/mailboxes/{mailbox_id}/key").get_data(
        as_text=True)


def test_a_replayed_cookie_does_not_download_a_gateway_key_again(kit, member_client):
    created = _add(member_client, "/gateways/new", name="Hall", key_mode="generate")
    gateway_id = created.headers["Location"].rsplit("/", 1)[-1]
    kit.drain()
    token = csrf_from(member_client.get(f"/gateways/{gateway_id}/settings").get_data(as_text=True))
    before = _session_cookie(member_client)

    first = member_client.post(f"/gateways/{gateway_id}/settings/download",
                               data={"csrf_token": token, "password": PASSWORD})
    assert "private_key" in json.loads(first.get_data(as_text=True))

    member_client.set_cookie("session", before)
    replay = member_client.post(f"/gateways/{gateway_id}/settings/download",
                                data={"csrf_token": token, "password": PASSWORD})
    assert replay.status_code == 200
    assert "private_key" not in json.loads(replay.get_data(as_text=True))  # the settings, never the key again


def test_of_two_downloads_of_one_offer_only_one_takes_it(kit, member_client):
    gateway = kit.add_gateway()
    _add(member_client, f"/mailboxes/new/{gateway.id}", name="Safe", kind="gun_safe", key_mode="generate")
    offer = db.session.scalars(sa.select(KeyOffer)).one()
    login = db.session.get(LoginSession, offer.login_session_id)
    # Two requests that both saw the offer open: the conditional DELETE lets one through.
    assert key_offers.is_open(login, offer.id)
    assert key_offers.take(login, offer.id) is True
    assert key_offers.take(login, offer.id) is False
    db.session.commit()
    assert not key_offers.is_open(login, offer.id)


def test_an_offer_belongs_to_its_login_session(kit, member_client, app):
    gateway = kit.add_gateway()
    _add(member_client, f"/mailboxes/new/{gateway.id}", name="Safe", kind="gun_safe", key_mode="generate")
    offer = db.session.scalars(sa.select(KeyOffer)).one()
    other = LoginSession(user_id=kit.user.id, token_hash="x" * 64)
    db.session.add(other)
    db.session.commit()
    assert key_offers.take(other, offer.id) is False

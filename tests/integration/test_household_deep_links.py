"""Deep links across households (issue 11): a link to a gateway, box or PIN of another of
the user's households switches the login session to that household, says so and shows the
page; one of a household the user is not in is a 404 like an unknown id, and switches
nothing. Runs on SQLite and PostgreSQL (the app fixture)."""
import re

import sqlalchemy as sa
from sqlalchemy import event

from portal.auth import POLL_HEADER
from portal.extensions import db
from portal.models import LoginSession
from portal.services import gateways, mailboxes, pins
from tests.plugins.accounts import Auth, csrf_from


def _devices(user, account, name):
    gateway, _ = gateways.add_gateway(account.id, user, name=f"{name} gateway", key_mode="generate")
    mailbox, _ = mailboxes.add_mailbox(account.id, gateway.id, user, name=f"{name} box", kind="mailbox",
                                       key_mode="generate")
    [pin] = pins.add_pin(account.id, mailbox.id, user, label=f"{name} courier", digits="5827")
    return gateway, mailbox, pin


def _setup(app, make_household, add_member):
    """Alice's own household (Elm), one she was invited to (Oak), and one she is not in (Ash)."""
    alice, elm = make_household("alice@example.com", "Elm Street")
    bob, oak = make_household("bob@example.com", "Oak Lane")
    carol, ash = make_household("carol@example.com", "Ash Row")
    add_member(oak, "alice@example.com")
    devices = {
        "elm": _devices(alice, elm, "Elm"),
        "oak": _devices(bob, oak, "Oak"),
        "ash": _devices(carol, ash, "Ash"),
    }
    client = app.test_client()
    assert Auth(client).login("alice@example.com").status_code == 302
    assert client.get("/gateways/").status_code == 200  # her first household is the current one
    return client, {"elm": elm.id, "oak": oak.id, "ash": ash.id}, devices


def _current(client_email="alice@example.com"):
    db.session.expire_all()
    return db.session.scalars(sa.select(LoginSession.current_account_id)
                              .where(LoginSession.revoked_at.is_(None))
                              .order_by(LoginSession.created_at.desc())).first()


def test_a_gateway_link_of_another_own_household_switches_to_it(app, make_household, add_member):
    client, households, devices = _setup(app, make_household, add_member)
    assert _current() == households["elm"]
    oak_gateway = devices["oak"][0]
    page = client.get(f"/gateways/{oak_gateway.id}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Oak gateway" in body and "Switched to household “Oak Lane”." in body
    assert _current() == households["oak"]
    # Back to a device of the first household: switched back, said again.
    body = client.get(f"/gateways/{devices['elm'][0].id}").get_data(as_text=True)
    assert "Elm gateway" in body and "Switched to household “Elm Street”." in body
    assert _current() == households["elm"]
    # A link within the current household says nothing.
    body = client.get(f"/gateways/{devices['elm'][0].id}").get_data(as_text=True)
    assert "Switched to household" not in body


def test_a_box_link_and_its_forms_of_another_own_household_switch_to_it(app, make_household, add_member):
    client, households, devices = _setup(app, make_household, add_member)
    _gateway, oak_box, oak_pin = devices["oak"]
    page = client.get(f"/mailboxes/{oak_box.id}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Oak box" in body and "Switched to household “Oak Lane”." in body
    assert _current() == households["oak"]
    token = csrf_from(body)
    # The htmx fragment of a box, and a PIN's form, of the other household switch too.
    client.get(f"/gateways/{devices['elm'][0].id}")
    assert _current() == households["elm"]
    fragment = client.get(f"/mailboxes/{oak_box.id}", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    assert _current() == households["oak"]
    client.get(f"/gateways/{devices['elm'][0].id}")
    shown = client.post(f"/mailboxes/pins/{oak_pin.id}/show", data={"csrf_token": token},
                        headers={"HX-Request": "true"})
    assert shown.status_code == 200
    assert _current() == households["oak"]


def test_a_poll_never_switches(app, make_household, add_member):
    client, households, devices = _setup(app, make_household, add_member)
    poll = client.get(f"/mailboxes/{devices['oak'][1].id}", headers={"HX-Request": "true", POLL_HEADER: "1"})
    assert poll.status_code in (200, 404)
    assert _current() == households["elm"]


def _without_csrf(html: str) -> str:
    return re.sub(r'("X-CSRFToken": "|name="csrf_token" (?:type="hidden" )?value=")[^"]+', r"\1", html)


def test_a_household_the_user_is_not_in_stays_a_404_and_switches_nothing(app, make_household, add_member):
    client, households, devices = _setup(app, make_household, add_member)
    ash_gateway, ash_box, ash_pin = devices["ash"]
    unknown = client.get("/gateways/00000000-0000-4000-8000-000000000000")
    for response in (
        client.get(f"/gateways/{ash_gateway.id}"),
        client.get(f"/mailboxes/{ash_box.id}"),
        client.get(f"/gateways/{ash_gateway.id}/settings"),
        client.get(f"/mailboxes/{ash_box.id}/box"),
    ):
        assert response.status_code == 404
        # The same page as for an id that never existed (the CSRF token, signed with the
        # second it was made, may differ between two requests).
        assert _without_csrf(response.get_data(as_text=True)) == _without_csrf(unknown.get_data(as_text=True))
        assert _current() == households["elm"]
    body = client.get("/gateways/").get_data(as_text=True)
    assert "Switched to household" not in body and "Ash" not in body


def test_following_a_link_costs_a_fixed_number_of_queries(app, make_household, add_member):
    client, households, devices = _setup(app, make_household, add_member)
    oak_box = devices["oak"][1]
    counted = []

    def count(*_args):
        counted.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        client.get(f"/mailboxes/{devices['elm'][1].id}")  # warm
        counted.clear()
        client.get(f"/mailboxes/{devices['elm'][1].id}")
        same = len(counted)
        counted.clear()
        client.get(f"/mailboxes/{oak_box.id}")
        switched = len(counted)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # The lookup of the row's household, the session's update, and the rows its commit
    # expired being read again: a fixed handful, whatever the households hold.
    assert switched <= same + 6, (same, switched)

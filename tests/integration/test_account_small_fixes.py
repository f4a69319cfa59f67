"""Issue 11's small ones: the invite sign-up is locked to the invited address; friendly 403
and 405 pages without Werkzeug's wording; a form refused on its POST URL leaves the browser
on a URL that answers GET (it goes to the form's page); the staff command's link follows
PUBLIC_URL or PORT."""
import re

import pytest

from portal.models import ROLE_MEMBER
from portal.services import accounts
from tests.plugins.accounts import PASSWORD, csrf_from

pytestmark = pytest.mark.rollback


# --- the invite sign-up ------------------------------------------------------------------

def test_the_register_page_from_an_invite_has_the_invited_address_locked(app, client, world):
    next_path = f"/members/join/{world['invite_token']}"
    page = client.get(f"/register?next={next_path}").get_data(as_text=True)
    field = re.search(r'<input[^>]*id="email"[^>]*>', page).group(0)
    assert 'value="a-invitee@example.com"' in field and "readonly" in field
    assert "The address your invite was sent to" in page
    # Another address posted anyway is ignored: the login is made for the invited one.
    response = client.post(f"/register?next={next_path}", data={
        "email": "someone-else@example.com", "password": "invitee has a passphrase",
        "csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.headers["Location"] == next_path
    assert accounts.find_user_by_email("a-invitee@example.com") is not None
    assert accounts.find_user_by_email("someone-else@example.com") is None


def test_the_register_page_without_an_invite_leaves_the_address_free(client):
    page = client.get("/register").get_data(as_text=True)
    field = re.search(r'<input[^>]*id="email"[^>]*>', page).group(0)
    assert "readonly" not in field


# --- error pages ---------------------------------------------------------------------------

def test_405_is_the_friendly_page_without_werkzeug_wording(client):
    response = client.get("/logout")
    html = response.get_data(as_text=True)
    assert response.status_code == 405
    assert "That action isn’t available this way" in html and 'class="error-page card"' in html
    assert "The method is not allowed for the requested URL" not in html


def test_403_is_the_friendly_page_without_werkzeug_wording(app, auth, world):
    auth.login(world["member"].email, PASSWORD)
    response = auth.post("/settings/household", {"household-name": "Mine now"})
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You can’t do that here" in html and "Ask an owner of the household" in html
    assert "You don't have the permission" not in html


# --- forms refused on their POST URL -----------------------------------------------------------

def _pages(world):
    mailbox, gateway, pin = world.id_of("mailbox"), world.id_of("gateway"), world.id_of("pin")
    return [
        (f"/mailboxes/{mailbox}/pins", f"/mailboxes/{mailbox}#pins"),
        (f"/mailboxes/{mailbox}/keypad", f"/mailboxes/{mailbox}#keypad"),
        (f"/mailboxes/pins/{pin}/show", f"/mailboxes/{mailbox}#pins"),
        (f"/gateways/{gateway}/settings/download", f"/gateways/{gateway}/settings"),
        ("/members/invite", "/members/#invite"),
        ("/settings/email", "/settings#login-email"),
        ("/settings/password", "/settings#password"),
        ("/settings/household", "/settings#household"),
        ("/household/new", "/settings#new-household"),
    ]


def test_a_get_of_a_forms_post_url_goes_to_the_forms_page(auth, world):
    auth.login(world["owner"].email, PASSWORD)
    for post_url, page in _pages(world):
        response = auth.client.get(post_url)
        assert response.status_code == 303, post_url
        assert response.headers["Location"] == page, post_url
        assert auth.client.get(page.split("#")[0]).status_code == 200


def test_a_refused_pin_then_reloaded_as_get_shows_the_box_page(auth, world):
    auth.login(world["owner"].email, PASSWORD)
    mailbox = world.id_of("mailbox")
    refused = auth.post(f"/mailboxes/{mailbox}/pins", {"label": "Neighbour", "digits": "12"},
                        page=f"/mailboxes/{mailbox}")
    assert refused.status_code == 200 and "field-error" in refused.get_data(as_text=True)
    again = auth.client.get(f"/mailboxes/{mailbox}/pins", follow_redirects=True)
    assert again.status_code == 200 and "Front mailbox" in again.get_data(as_text=True)


def test_a_user_without_a_household_goes_to_its_creation_page(app, client, auth):
    accounts.register_user("lonely@example.com", PASSWORD)
    auth.login("lonely@example.com", PASSWORD)
    response = client.get("/household/new")
    assert response.status_code == 303 and response.headers["Location"] == "/no-household"


def test_another_households_ids_are_still_404_on_get(auth, world):
    auth.login(world.b["owner"].email, PASSWORD)
    for post_url, _page in _pages(world)[:4]:
        assert auth.client.get(post_url).status_code == 404, post_url


def test_a_plain_member_gets_403_for_the_settings_download_url(app, auth, world):
    assert world["membership"].role == ROLE_MEMBER
    auth.login(world["member"].email, PASSWORD)
    assert auth.client.get(f"/gateways/{world.id_of('gateway')}/settings/download").status_code == 403


# --- the staff command's link ------------------------------------------------------------------

@pytest.mark.parametrize("settings,base", [
    ({"PUBLIC_URL": "", "PORT": 8123}, "http://127.0.0.1:8123/"),
    ({"PUBLIC_URL": "https://iotlock.example.com", "PORT": 8123}, "https://iotlock.example.com/"),
])
def test_the_staff_command_prints_a_link_on_public_url_or_the_served_port(app, settings, base):
    app.config.update(settings)
    result = app.test_cli_runner().invoke(args=["staff", "create", "sam@example.com"])
    assert result.exit_code == 0, result.output
    assert re.search(re.escape(base) + r"support/set-password/[A-Za-z0-9_-]{43}\n", result.output), result.output
    assert ":5000" not in result.output

"""A NUL byte (or another control character) in any text field of any form is refused with
a message on that field: a 200 page, nothing stored, on SQLite and PostgreSQL alike
(PostgreSQL refuses a NUL in text outright, which was a 500)."""
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask_wtf import FlaskForm

from portal.extensions import db
from portal.forms import Form
from portal.models import LoginSession, LoginThrottle, User, utcnow
from portal.services import accounts
from portal.services import staff as staff_service
from portal.services.errors import ValidationFailed
from portal.services.text import CONTROL_MESSAGE, MULTI_LINE_MESSAGE, NUL_MESSAGE
from tests.plugins.accounts import PASSWORD, Auth, csrf_from

pytestmark = pytest.mark.rollback

NUL = "\x00"


@dataclass
class Case:
    path: str  # with {gateway}, {mailbox}, {pin}, {token} from the world
    data: dict  # a valid submission; each text field in turn gets a NUL
    fields: tuple  # the text fields: name -> kind
    who: str = "owner"  # owner | anonymous | staff-link | staff
    page: str = ""  # where the CSRF token comes from (default: path)
    kinds: dict = field(default_factory=dict)  # field -> "multi" | "password" (else single-line)
    error_id: str = "{field}-error"  # the id of the refusal's <p> ("" where it has none)
    stale_reauth: bool = False  # the page asks for the password only after REAUTH_WINDOW
    htmx: bool = False  # posted as htmx does (the keypad answers with its own panel)
    new_box: bool = False  # on a box just added with a generated key (its key page asks then)


CASES = {
    "register": Case("/register", {"email": "new@example.com", "password": "lantern orchard 42",
                                   "household_name": "New House"}, ("email", "password", "household_name"),
                     who="anonymous", kinds={"password": "password"}),
    "login": Case("/login", {"email": "a-owner@example.com", "password": PASSWORD}, ("email", "password"),
                  who="anonymous", kinds={"password": "password"}),
    "new household": Case("/household/new", {"new-name": "Second home"}, ("new-name",), page="/settings"),
    "change email": Case("/settings/email", {"email-email": "moved@example.com", "email-password": PASSWORD},
                         ("email-email", "email-password"), page="/settings", kinds={"email-password": "password"}),
    "change password": Case("/settings/password", {"pw-current_password": PASSWORD,
                                                   "pw-new_password": "lantern orchard 42"},
                            ("pw-current_password", "pw-new_password"), page="/settings",
                            kinds={"pw-current_password": "password", "pw-new_password": "password"}),
    "rename household": Case("/settings/household", {"household-name": "Renamed"}, ("household-name",),
                             page="/settings"),
    "invite": Case("/members/invite", {"email": "friend@example.com"}, ("email",), page="/members/"),
    "add gateway": Case("/gateways/new", {"name": "Shed", "key_mode": "paste", "public_key": "{new_key}"},
                        ("name", "public_key"), kinds={"public_key": "multi"}),
    "rename gateway": Case("/gateways/{gateway}/rename", {"name": "Porch"}, ("name",)),
    "gateway settings": Case("/gateways/{gateway}/settings/download", {"password": PASSWORD}, ("password",),
                             kinds={"password": "password"}, page="/gateways/{gateway}/settings"),
    "add box": Case("/mailboxes/new/{gateway}", {"name": "Back box", "kind": "mailbox", "key_mode": "paste",
                                                 "public_key": "{new_key}"},
                    ("name", "public_key"), kinds={"public_key": "multi"}),
    "rename box": Case("/mailboxes/{mailbox}/rename", {"name": "Side box"}, ("name",)),
    "add PIN": Case("/mailboxes/{mailbox}/pins", {"label": "Courier", "digits": "5827"}, ("label", "digits"),
                    page="/mailboxes/{mailbox}", kinds={"digits": "password"}),
    "show PIN": Case("/mailboxes/pins/{pin}/show", {"password": PASSWORD}, ("password",),
                     page="/mailboxes/{mailbox}", kinds={"password": "password"}, error_id="pw-{pin}-error",
                     stale_reauth=True),
    "box key": Case("/mailboxes/{mailbox}/key", {"password": PASSWORD}, ("password",),
                    kinds={"password": "password"}, stale_reauth=True, new_box=True),
    "keypad": Case("/mailboxes/{mailbox}/keypad", {"digits": "4829", "key": "enter"}, ("digits",),
                   page="/mailboxes/{mailbox}", error_id="", htmx=True),
    "staff set password": Case("/support/set-password/{token}", {"password": "lantern orchard 42",
                                                                 "confirm": "lantern orchard 42"},
                               ("password", "confirm"), who="staff-link",
                               kinds={"password": "password", "confirm": "password"}),
    "staff code": Case("/support/verify", {"code": "123456"}, ("code",), who="staff"),
}

MESSAGES = {"single": CONTROL_MESSAGE, "multi": MULTI_LINE_MESSAGE, "password": NUL_MESSAGE}


def _html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")


def _client(app, world, case: Case, values: dict):
    client = app.test_client()
    auth = Auth(client)
    if case.who == "owner":
        assert auth.login(world.a["owner"].email, PASSWORD).status_code == 302
        if case.new_box:
            added = auth.post(f"/mailboxes/new/{values['gateway']}", {
                "name": "Safe", "kind": "gun_safe", "key_mode": "generate"}, page=f"/mailboxes/new/{values['gateway']}")
            values["mailbox"] = added.headers["Location"].rsplit("/", 1)[-1]
        if case.stale_reauth:
            db.session.execute(sa.update(LoginSession).values(reauthenticated_at=utcnow() - timedelta(hours=1)))
            db.session.commit()
    elif case.who in ("staff-link", "staff"):
        user, token = staff_service.create_staff("sam@support.example", "Sam")
        values["token"] = token
        if case.who == "staff":
            staff_service.set_password_from_link(token, PASSWORD)
            staff_service.begin_enrolment(user)
            user.totp_enrolled_at = user.created_at
            db.session.commit()
            assert auth.login("sam@support.example", PASSWORD).status_code == 302
    return client


def _counts():
    db.session.expire_all()
    return (db.session.scalar(sa.select(sa.func.count()).select_from(User)),
            db.session.scalar(sa.select(sa.func.count()).select_from(LoginThrottle)))


@pytest.mark.parametrize("name", CASES)
def test_a_nul_in_any_text_field_is_refused_on_that_field_and_nothing_is_stored(app, world, name):
    case = CASES[name]
    for poisoned in case.fields:
        values = {"gateway": world.id_of("gateway"), "mailbox": world.id_of("mailbox"), "pin": world.id_of("pin"),
                  "new_key": accounts.crypto.generate_keypair()[0]}
        client = _client(app, world, case, values)
        before, counts = world.snapshot("a"), _counts()
        path = case.path.format(**values)
        token = csrf_from(client.get((case.page or case.path).format(**values)).get_data(as_text=True))
        data = {key: value.format(**values) for key, value in case.data.items()}
        data[poisoned] = data[poisoned][:2] + NUL + data[poisoned][2:]
        response = client.post(path, data={**data, "csrf_token": token},
                               headers={"HX-Request": "true"} if case.htmx else {})
        body = response.get_data(as_text=True)
        assert response.status_code == 200, (poisoned, response.status_code, body[:300])
        message = _html_escaped(MESSAGES[case.kinds.get(poisoned, "single")])
        error_id = case.error_id.format(field=poisoned, **values)
        assert (f'id="{error_id}">' if error_id else 'class="field-error">') + f"{message}<" in body, poisoned
        assert NUL not in body
        assert world.snapshot("a") == before
        assert _counts() == counts
        db.session.rollback()
        db.session.execute(sa.delete(User).where(User.email == "sam@support.example"))


@pytest.mark.parametrize("character", ["\x00", "\x07", "\t", "\n", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
def test_single_line_names_refuse_every_control_character(app, world, character):
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    before = world.snapshot("a")
    response = auth.post("/settings/household", {"household-name": f"Bad{character}Name"})
    assert response.status_code == 200
    assert _html_escaped(CONTROL_MESSAGE) in response.get_data(as_text=True)
    assert world.snapshot("a") == before


def test_a_pasted_pem_key_keeps_its_line_breaks(app, world):
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    pem = "-----BEGIN PUBLIC KEY-----\r\nMCowBQYDK2VuAyEA" + "A" * 43 + "=\r\n-----END PUBLIC KEY-----\r\n"
    response = auth.post("/gateways/new", {"name": "PEM hub", "key_mode": "paste", "public_key": pem},
                         page="/gateways/new")
    assert "control characters" not in response.get_data(as_text=True)


def test_the_services_refuse_control_characters_too(app, world):
    owner = world.a["owner"]
    for call in (
        lambda: accounts.register("x\x00@example.com", "lantern orchard 42", "House"),
        lambda: accounts.register("ok@example.com", "lantern\x00orchard 42", "House"),
        lambda: accounts.register("ok@example.com", "lantern orchard 42", "Ho\x00use"),
        lambda: accounts.add_household(owner, "Tab\there"),
        lambda: staff_service.create_staff("sam@support.example", "S\x00am"),
    ):
        with pytest.raises(ValidationFailed):
            call()
    assert accounts.authenticate("a-owner@example.com\x00", PASSWORD) is None


def test_the_support_search_ignores_control_characters(app, world, signed_in_staff, client):
    response = client.get("/support/?q=Household%00%20A")
    assert response.status_code == 200


def test_every_form_of_the_portal_is_a_portal_form():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    strays = [f"{c.__module__}.{c.__name__}" for c in subclasses(FlaskForm)
              if c.__module__.startswith("portal.") and not issubclass(c, Form)]
    assert strays == []

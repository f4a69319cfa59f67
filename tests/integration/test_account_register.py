"""Registration: user, household and owner membership in one go; every bad input is
answered on its field and nothing is created."""
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Account, Membership, User
from portal.services import accounts
from portal.services.errors import ValidationFailed
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.rollback


def _counts():
    return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (User, Account, Membership))


def _register(auth, **data):
    form = {"email": "new@example.com", "password": PASSWORD, "household_name": "Oak Lane"}
    form.update(data)
    form["csrf_token"] = auth.csrf("/register")
    return auth.client.post("/register", data=form)


def test_register_creates_user_household_and_owner_membership(auth):
    response = _register(auth)
    assert response.status_code == 302
    user = accounts.find_user_by_email("new@example.com")
    memberships = accounts.memberships_of(user.id)
    assert [(m.account.name, m.role) for m in memberships] == [("Oak Lane", "owner")]
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    page = auth.client.get("/gateways/").get_data(as_text=True)
    assert "Oak Lane" in page


@pytest.mark.parametrize(
    "data,message",
    [
        ({"email": ""}, "Enter your email address."),
        ({"email": "not an email"}, "Enter a valid email address"),
        ({"email": "x@"}, "Enter a valid email address"),
        ({"email": "a" * 245 + "@example.com"}, "at most 254 characters"),
        ({"password": ""}, "Choose a password."),
        ({"password": "short"}, "Use between 8 and 128 characters."),
        ({"password": "p" * 129}, "Use between 8 and 128 characters."),
        ({"password": "Password123"}, "one of the most common"),
        ({"password": "new@example.com"}, "Don’t use your email address"),
        ({"household_name": ""}, "Give your household a name."),
        ({"household_name": "   "}, "Give your household a name."),
        ({"household_name": "H" * 81}, "Keep it under 80 characters."),
    ],
)
def test_bad_input_is_answered_on_the_field_and_nothing_is_created(auth, data, message):
    before = _counts()
    response = _register(auth, **data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert message in html
    assert 'class="field-error"' in html
    assert _counts() == before


def test_duplicate_email_is_refused_whatever_its_case(auth, make_household):
    make_household("taken@example.com", "Elm Street")
    before = _counts()
    response = _register(auth, email="  TAKEN@example.com")
    assert "An account with this email already exists" in response.get_data(as_text=True)
    assert _counts() == before


def test_wrong_csrf_token_is_refused_and_nothing_is_created(auth):
    auth.csrf("/register")
    before = _counts()
    response = auth.client.post(
        "/register",
        data={"email": "new@example.com", "password": PASSWORD, "household_name": "Oak", "csrf_token": "forged"},
    )
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    assert _counts() == before


def test_missing_csrf_token_is_refused(client):
    response = client.post("/register", data={"email": "new@example.com", "password": PASSWORD, "household_name": "Oak"})
    assert response.status_code == 400
    assert accounts.find_user_by_email("new@example.com") is None


def test_a_128_character_password_works_for_registration_and_login(auth):
    long_password = "correct horse battery staple " * 4 + "x" * 12
    assert len(long_password) == 128
    assert _register(auth, password=long_password).status_code == 302
    auth.logout()
    assert auth.login("new@example.com", long_password).status_code == 302


def test_service_refuses_the_same_inputs(app):
    with pytest.raises(ValidationFailed) as exc:
        accounts.register("bad", PASSWORD, "Oak")
    assert exc.value.field == "email"
    with pytest.raises(ValidationFailed) as exc:
        accounts.register("a@example.com", "12345678", "Oak")
    assert exc.value.field == "password"
    with pytest.raises(ValidationFailed) as exc:
        accounts.register("a@example.com", PASSWORD, " ")
    assert exc.value.field == "household_name"
    assert _counts() == (0, 0, 0)


def test_household_name_is_trimmed_and_inner_spaces_collapsed(app):
    _user, account = accounts.register("a@example.com", PASSWORD, "  The   Smiths  ")
    assert account.name == "The Smiths"


def test_one_network_cannot_create_accounts_without_limit(app, auth, client, monkeypatch):
    app.config["SIGNUPS_PER_ADDRESS"] = 3
    for n in range(3):
        assert _register(auth, email=f"bulk{n}@example.com").status_code == 302
        auth.logout()
    before = _counts()
    # A throttled sign-up never reaches the password hasher.
    monkeypatch.setattr(accounts.crypto, "hash_password", lambda _pw: pytest.fail("hashed while throttled"))
    response = _register(auth, email="bulk3@example.com")
    assert response.status_code == 429
    assert "Too many new accounts from your network" in response.get_data(as_text=True)
    assert _counts() == before


def test_sign_ups_refused_on_a_field_do_not_count_towards_the_limit(app, auth):
    # Each sign-up takes a slot before hashing; one that creates nothing gives it back.
    app.config["SIGNUPS_PER_ADDRESS"] = 2
    accounts.register("taken@example.com", PASSWORD, "Oak")
    for _ in range(3):
        assert _register(auth, email="taken@example.com").status_code == 200
    for n in range(2):
        assert _register(auth, email=f"new{n}@example.com").status_code == 302
        auth.logout()
    assert _register(auth, email="new2@example.com").status_code == 429

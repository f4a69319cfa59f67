"""Contract: the users service, and the error rules every service shares.

POST /users, POST /tokens, GET /users/profile; JSON errors under text/plain, 415, 401
without Bearer.
"""
import base64
import json
import uuid

from tests.contract.checks import assert_error, assert_json_empty, is_uuid


def _email():
    return f"contract-{uuid.uuid4().hex[:16]}@example.com"


def test_registering_answers_201_with_location_and_empty_json_body(target):
    answer = target.register(_email(), "long-enough-password")

    assert_json_empty(answer, 201)
    prefix, _, user_id = answer.headers["Location"].rpartition("/")
    assert prefix == "/users"
    assert is_uuid(user_id)


def test_registering_a_taken_email_is_409(target):
    email = _email()
    assert target.register(email, "long-enough-password").status_code == 201

    assert_error(target.register(email, "another-password"), 409, "entity already exists")


def test_password_of_seven_characters_is_400_with_the_requirements_message(target):
    answer = target.register(_email(), "1234567")

    assert_error(answer, 400, "password does not meet the requirements")


def test_password_of_exactly_eight_characters_is_accepted(target):
    assert target.register(_email(), "12345678").status_code == 201


def test_bad_email_is_400_malformed(target):
    assert_error(target.register("not-an-email", "long-enough-password"), 400, "malformed entity specification")


def test_bad_json_is_400_malformed(target):
    answer = target.call(
        "POST", "/users", data=b'{"email": ', headers={"Content-Type": "application/json"}
    )

    assert_error(answer, 400, "malformed entity specification")


def test_json_request_without_application_json_is_415(target):
    body = json.dumps({"email": _email(), "password": "long-enough-password"})
    answer = target.call("POST", "/users", data=body, headers={"Content-Type": "text/plain"})

    assert_error(answer, 415, "unsupported content type")


def test_content_type_with_charset_still_counts_as_json(target):
    body = json.dumps({"email": _email(), "password": "long-enough-password"})
    answer = target.call(
        "POST", "/users", data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )

    assert answer.status_code == 201


def test_login_answers_201_with_a_jwt(target):
    email, password = _email(), "long-enough-password"
    target.register(email, password)

    answer = target.call("POST", "/tokens", json={"email": email, "password": password})

    assert answer.status_code == 201
    assert answer.headers["Content-Type"] == "application/json"
    token = answer.json()["token"]
    header, claims, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"]
    assert "exp" in json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert signature


def test_login_with_a_wrong_password_is_401(target):
    email = _email()
    target.register(email, "long-enough-password")

    answer = target.call("POST", "/tokens", json={"email": email, "password": "wrong-password"})

    assert_error(answer, 401, "failed to perform authentication over the entity")


def test_login_with_an_unknown_email_is_401(target):
    answer = target.call("POST", "/tokens", json={"email": _email(), "password": "long-enough-password"})

    assert_error(answer, 401, "failed to perform authentication over the entity")


def test_profile_shows_the_id_of_the_location_and_the_email(target):
    email, password = _email(), "long-enough-password"
    created = target.register(email, password)
    user = target.login(email, password)

    answer = target.call("GET", "/users/profile", user=user)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    profile = answer.json()
    assert profile["id"] == created.headers["Location"].rsplit("/", 1)[-1]
    assert profile["email"] == email


def test_profile_without_a_token_is_401(target):
    assert_error(target.call("GET", "/users/profile"), 401, "missing or invalid bearer user token")


def test_profile_with_an_invalid_token_is_401(target):
    answer = target.call("GET", "/users/profile", headers={"Authorization": "Bearer not-a-token"})

    assert_error(answer, 401)


def test_things_call_without_a_token_is_401_with_the_bearer_message(target):
    assert_error(target.call("GET", "/things"), 401, "missing or invalid bearer user token")


def test_things_call_with_a_token_lacking_the_bearer_prefix_is_401(target):
    user = target.user()

    answer = target.call("GET", "/things", headers={"Authorization": user.token})

    assert_error(answer, 401, "missing or invalid bearer user token")

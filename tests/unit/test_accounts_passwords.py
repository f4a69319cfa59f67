"""The password rules: 8 to 128 characters, no composition rules, common passwords refused."""
import pytest

from portal.services.accounts import check_password, common_passwords
from portal.services.errors import ValidationFailed


def test_the_shipped_list_holds_thousands_of_common_passwords():
    words = common_passwords()
    assert len(words) > 5000
    for known in ("123456", "password", "qwerty123", "iloveyou", "1q2w3e4r5t", "letmein1", "sunshine2020"):
        assert known in words


@pytest.mark.parametrize("password", ["password", "Password1", "QWERTY123", "12345678", "iloveyou!", "Sunshine2020",
                                      "qwertyuiop", "11111111", "p@ssw0rd", "  password123  "])
def test_common_passwords_are_refused_whatever_their_case(password):
    with pytest.raises(ValidationFailed) as exc:
        check_password(password)
    assert "common" in exc.value.message
    assert exc.value.field == "password"


@pytest.mark.parametrize("password", ["short", "1234567", ""])
def test_passwords_under_8_characters_are_refused(password):
    with pytest.raises(ValidationFailed, match="at least 8"):
        check_password(password)


def test_passwords_of_8_and_of_128_characters_are_accepted():
    check_password("zq8#kWm!")
    check_password("a very long passphrase " * 5 + "x" * 13)  # 128 characters
    assert len("a very long passphrase " * 5 + "x" * 13) == 128


def test_a_64_character_passphrase_is_accepted():
    check_password("this passphrase is exactly sixty four characters long, honestly!")


def test_passwords_over_128_characters_are_refused():
    with pytest.raises(ValidationFailed, match="at most 128"):
        check_password("y" * 129)


@pytest.mark.parametrize("password", ["alllowercaseletters", "ONLYUPPERCASE", "982341756203", "spaces are fine here",
                                      "ünïcödé pässwörd", "🔑🔑🔑🔑 emoji key"])
def test_no_composition_rules(password):
    check_password(password)


def test_the_email_address_is_not_a_password():
    with pytest.raises(ValidationFailed, match="email"):
        check_password("dora.explorer@example.com", email="Dora.Explorer@example.com")
    with pytest.raises(ValidationFailed, match="email"):
        check_password("dora.explorer", email="dora.explorer@example.com")

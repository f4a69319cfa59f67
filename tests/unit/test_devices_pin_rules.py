"""The PIN rules a member meets when adding a PIN, and the words each delivery state is
shown with: pure functions, no database."""
import pytest

from portal.models import Command, Pin
from portal.services.deliveries import pin_shown, unlock_shown
from portal.services.errors import ValidationFailed
from portal.services.pins import check_digits, check_label


@pytest.mark.parametrize("digits", ["4821", "48213", "90817263", " 4821 ", "10293847", "8901", "1357"])
def test_good_pins_are_accepted(digits):
    assert check_digits(digits) == digits.strip()


@pytest.mark.parametrize(
    "digits,why",
    [
        ("", "Enter the PIN"),
        ("48a1", "digits only"),
        ("48-21", "digits only"),
        ("４８２１", "digits only"),  # full-width digits are not ASCII digits
        ("482", "4 to 8 digits; this one has 3"),
        ("482193746", "4 to 8 digits; this one has 9"),
        ("0482", "cannot start with 0"),
        ("1111", "One digit repeated"),
        ("99999999", "One digit repeated"),
        ("1234", "straight run"),
        ("9876", "straight run"),
        ("3456789", "straight run"),
        ("87654321", "straight run"),
    ],
)
def test_bad_pins_are_refused_on_the_digits_field_with_the_reason(digits, why):
    with pytest.raises(ValidationFailed) as refused:
        check_digits(digits)
    assert refused.value.field == "digits"
    assert why in refused.value.message


def test_a_label_is_needed_and_kept_short():
    assert check_label("  Parcel   courier ") == "Parcel courier"
    for bad, why in (("", "Say who"), ("x" * 61, "under 60")):
        with pytest.raises(ValidationFailed) as refused:
            check_label(bad)
        assert refused.value.field == "label" and why in refused.value.message


def _pin(status):
    return Pin(label="Grandma", status=status)


def _command(state, action="AUTH", reason=None):
    return Command(action=action, state=state, reason=reason)


@pytest.mark.parametrize(
    "status,state,label,live",
    [
        ("adding", "queued", "Queued", True),
        ("adding", "sent", "Sent, waiting for the box", True),
        ("adding", "failed", "Failed", False),
        ("active", "confirmed", "Confirmed on the box", False),
        ("removing", "queued", "Removal queued", True),
        ("removing", "sent", "Removal sent, waiting for the box", True),
        ("removing", "failed", "Removal failed", False),
    ],
)
def test_each_pin_delivery_state_has_words_and_polls_only_while_moving(status, state, label, live):
    shown = pin_shown(_pin(status), _command(state, "UNAUTH" if status == "removing" else "AUTH", "slots full"))
    assert shown.label == label
    assert shown.live is live
    if state == "failed":
        assert shown.reason == "slots full"


@pytest.mark.parametrize(
    "state,label,live",
    [("queued", "Waiting to be sent", True), ("sent", "Sent, waiting for the box", True),
     ("confirmed", "Opened", False), ("failed", "Refused", False), ("expired", "Expired", False)],
)
def test_unlock_results_are_opened_refused_or_expired(state, label, live):
    shown = unlock_shown(_command(state, "UNLOCK"))
    assert (shown.label, shown.live) == (label, live)
    if state == "expired":
        assert "not opened" in shown.reason

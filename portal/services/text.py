"""Control characters in what people type: refused with a message on the field, never
stored (PostgreSQL refuses a NUL in text outright: a 500 before this check).

Single-line values (names, labels, emails, codes, digits) may hold no C0 or C1 control
character (tab and line breaks included: a single-line input cannot type them), no DEL and
no U+2028/U+2029 line or paragraph separator. Multi-line values (a pasted PEM key) may
also hold tab, line feed and carriage return. Passwords may hold any character but NUL.
The forms check through portal/forms.py and the services again, so every way in obeys."""
import re

from portal.services.errors import ValidationFailed

_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_NUL = re.compile("\x00")

CONTROL_MESSAGE = "Remove the control characters (such as a NUL byte or a line break) from this field."
MULTI_LINE_MESSAGE = "Remove the control characters (such as a NUL byte) from this field."
NUL_MESSAGE = "A password cannot contain a NUL character."


_REFUSED = {"single": (_SINGLE_LINE, CONTROL_MESSAGE), "multi": (_MULTI_LINE, MULTI_LINE_MESSAGE),
            "password": (_NUL, NUL_MESSAGE)}


def control_problem(value: str | None, *, kind: str = "single") -> str | None:
    """The message for `value` if it holds characters its kind refuses, else None.
    kind: "single" (one line), "multi" (several lines) or "password"."""
    pattern, message = _REFUSED[kind]
    return message if value and pattern.search(value) else None


def refuse_controls(value: str | None, field: str, *, kind: str = "single") -> None:
    """Raise ValidationFailed on `field` when `value` holds a character its kind refuses."""
    message = control_problem(value, kind=kind)
    if message:
        raise ValidationFailed(message, field=field)


def without_controls(value: str | None, *, kind: str = "single") -> str:
    """`value` without the characters its kind refuses: a refused form shows the rest
    again, and search terms (never stored) simply drop them."""
    return _REFUSED[kind][0].sub("", value or "")

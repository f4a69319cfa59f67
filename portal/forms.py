"""The base of every form: each text field refuses control characters before its own
validators run (portal/services/text.py says which), with one message on the field."""
from flask_wtf import FlaskForm
from wtforms import Field, PasswordField, StringField, TextAreaField
from wtforms.validators import StopValidation

from portal.services.text import control_problem, without_controls


def _kind(field: Field) -> str | None:
    if isinstance(field, PasswordField):
        return "password"
    if isinstance(field, TextAreaField):
        return "multi"
    if isinstance(field, StringField):  # EmailField, SearchField... are StringFields
        return "single"
    return None  # choices, the CSRF token: checked against fixed values already


def _refuse_controls(kind: str):
    def check(_form, field):
        message = control_problem(field.data if isinstance(field.data, str) else None, kind=kind)
        if message:
            field.data = without_controls(field.data, kind=kind)  # shown again without them
            raise StopValidation(message)

    return check


class Form(FlaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self:
            kind = _kind(field) if field.name != "csrf_token" else None
            if kind is not None:
                # A new list on this instance: the declared validators are shared by all.
                field.validators = [_refuse_controls(kind), *field.validators]

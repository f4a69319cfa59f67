"""The base of every form: each text field refuses control characters before its own
validators run (portal/services/text.py says which), with one message on the field. A
select widget for long lists of choices that are the same on every page, WTForms'
attribute writer without its slow path, and the templates' CSRF token."""
import functools

import wtforms.widgets
import wtforms.widgets.core
from flask import g
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape
from wtforms import Field, PasswordField, StringField, TextAreaField
from wtforms.fields.choices import Choice
from wtforms.validators import StopValidation
from wtforms.widgets import Select
from wtforms.widgets.core import clean_key

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


@functools.lru_cache(maxsize=8)
def _options(choices: tuple) -> tuple[str, dict[str, tuple[str, str]]]:
    """The options of a list of choices, rendered once: all of them unselected, and for each
    value its option unselected and selected."""
    plain = [str(Select.render_option(Choice(value, label, False, {}))) for value, label in choices]
    chosen = {str(value): (option, str(Select.render_option(Choice(value, label, True, {}))))
              for (value, label), option in zip(choices, plain, strict=True)}
    return "".join(plain), chosen


class OptionsOnceSelect(Select):
    """A single select whose options are rendered once per process (the ~600 time zones:
    rendering each option on every page was a quarter of the settings page); the same
    HTML as WTForms' Select."""

    def __call__(self, field, **kwargs):
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for name in self.validation_attrs:
            if name not in kwargs and getattr(flags, name, False):
                kwargs[name] = getattr(flags, name)
        options, by_value = _options(tuple(field.choices))
        chosen = by_value.get(str(field.data)) if field.data is not None else None
        if chosen is not None:
            options = options.replace(chosen[0], chosen[1], 1)
        return Markup(f"<select {html_params(name=field.name, **kwargs)}>{options}</select>")


def html_params(**kwargs) -> Markup:
    """The attributes of a tag, as WTForms' `widgets.html_params` writes them, byte for byte
    (sorted by name; True alone, False left out; values escaped, and a quote in a Markup
    value as &quot;), with an f-string per attribute where WTForms calls Markup.format, a
    string.Formatter run in Python: that was a fifth of the settings page and of a box page
    (docs/performance.md, round 13)."""
    params = []
    for key, value in sorted(kwargs.items()):
        name = escape(clean_key(key))
        if value is True:
            params.append(str(name))
        elif value is not False:
            params.append(f'{name}="{str(escape(value)).replace(chr(34), "&quot;")}"')
    return Markup(" ".join(params))


def csrf_token() -> str:
    """Templates' csrf_token(): Flask-WTF's token for this request, taken from where
    generate_csrf keeps it once made. A box's live part asks once per button (twenty
    times for ten PINs), and generate_csrf reads two settings on every call."""
    return g.get("csrf_token") or generate_csrf()


def draw_attributes_fast() -> None:
    """Every WTForms widget and label writes its attributes with `html_params` above. The
    widgets look it up in three places: their module, the package's copy (labels), and the
    class attribute of Input and Button. Idempotent."""
    wtforms.widgets.core.html_params = html_params
    wtforms.widgets.html_params = html_params
    for widget in (wtforms.widgets.core.Input, wtforms.widgets.core.Button):
        widget.html_params = staticmethod(html_params)

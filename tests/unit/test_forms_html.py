"""Forms draw the HTML WTForms draws, faster: the attribute writer (portal.forms.html_params)
writes what WTForms' own writes, byte for byte, and a list of choices drawn by the
choice_items macro is what WTForms draws for each choice and its label."""
import importlib.util
import re

import pytest
import wtforms.widgets
import wtforms.widgets.core
from flask import render_template_string
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from wtforms import Form, RadioField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired
from wtforms.widgets import CheckboxInput, ListWidget

from portal.account.forms import ApiTokenForm
from portal.forms import html_params
from portal.mailboxes.forms import PinForm
from portal.webhooks.forms import EndpointForm


def _wtforms_own_writer():
    """WTForms' html_params as shipped: a fresh copy of its module, which nothing replaced."""
    spec = importlib.util.spec_from_file_location("wtforms_widgets_as_shipped", wtforms.widgets.core.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.html_params


SHIPPED = _wtforms_own_writer()

_keys = st.sampled_from(["id", "name", "type", "value", "class_", "for_", "data_browser_zone", "aria_describedby",
                         "aria-invalid", "data-x", "autocomplete", "checked", "required", "k&y", "rows"])
_values = st.one_of(st.booleans(), st.none(), st.integers(), st.text(),
                    st.text().map(Markup), st.sampled_from(['say "hi"', "<b>&amp;</b>", "", "'quoted'"]))


# Derandomized, as the schemathesis tests: the same 300 cases on every run.
@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=8))
def test_attributes_are_written_byte_for_byte_as_wtforms_writes_them(attributes):
    ours, theirs = html_params(**attributes), SHIPPED(**attributes)
    assert isinstance(ours, Markup)
    assert str(ours) == str(theirs)


def test_a_quote_inside_markup_is_escaped_and_booleans_stand_alone():
    assert str(html_params(value=Markup('a"b'), checked=True, disabled=False, class_="x")) == \
        'checked class="x" value="a&quot;b"'


class _Choices(Form):
    plain = RadioField("Plain", choices=[SelectChoice("a", "A & co"), SelectChoice("b", "<B>")], default="b")
    needed = RadioField("Needed", choices=[SelectChoice("1", "One"), SelectChoice("2", "Two")],
                        validators=[InputRequired()])
    many = SelectMultipleField("Many", choices=[SelectChoice("x", 'Say "x"'), SelectChoice("y", "Y"),
                                                SelectChoice("z", "Z")], default=["x", "z"],
                               widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    many_needed = SelectMultipleField("Many needed", choices=[SelectChoice("p", "P")], validators=[DataRequired()],
                                      widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


_MACRO = '{% from "_macros/forms.html" import choice_items %}<ul>{{ choice_items(f) }}</ul>'
_WTFORMS = "<ul>{% for choice in f %}<li>{{ choice() }} {{ choice.label() }}</li>{% endfor %}</ul>"


def _between_tags(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


def _fields(app):
    with app.test_request_context():
        pin_form = PinForm(formdata=None)
        pin_form.boxes.choices = [SelectChoice(f"box-{n}", f"Box “{n}”") for n in range(5)]
        pin_form.boxes.data = ["box-1", "box-3"]
        pin_form.kind.data = "weekly"
        forms = [pin_form, ApiTokenForm(formdata=None), EndpointForm(formdata=None), _Choices()]
    return [pin_form.kind, pin_form.boxes, forms[1].scopes, forms[2].kinds,
            *(field for field in forms[3] if field.type in ("RadioField", "SelectMultipleField"))]


def test_choice_items_draw_what_wtforms_draws_for_each_choice(sqlite_app, monkeypatch):
    monkeypatch.setattr(wtforms.widgets.core, "html_params", SHIPPED)
    monkeypatch.setattr(wtforms.widgets, "html_params", SHIPPED)
    monkeypatch.setattr(wtforms.widgets.core.Input, "html_params", staticmethod(SHIPPED))
    fields = _fields(sqlite_app)
    assert len(fields) == 8
    with sqlite_app.test_request_context():
        for field in fields:
            ours = render_template_string(_MACRO, f=field)
            theirs = render_template_string(_WTFORMS, f=field)
            assert _between_tags(ours) == _between_tags(theirs), field.name
            assert ours.count("<li>") == len(field.choices)


@pytest.mark.parametrize("name", ["needed", "many_needed"])
def test_a_required_choice_is_drawn_required(sqlite_app, name):
    with sqlite_app.test_request_context():
        html = render_template_string(_MACRO, f=_Choices()[name])
    assert html.count(" required ") == html.count("<input")

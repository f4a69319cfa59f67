"""The time-zone select renders its ~600 options once per process, and the HTML is the same
as WTForms' own select, with the household's zone chosen."""
from wtforms import Form, SelectField

from portal import timezones
from portal.forms import OptionsOnceSelect


class _Plain(Form):
    zone = SelectField("Zone", choices=[], validate_choice=False)


class _Once(Form):
    zone = SelectField("Zone", choices=[], validate_choice=False, widget=OptionsOnceSelect())


def _rendered(form_class, data) -> str:
    form = form_class()
    form.zone.choices = timezones.labelled_choices()
    form.zone.data = data
    return str(form.zone(**{"aria-describedby": "zone-hint"}))


def test_the_select_is_the_same_html_as_wtforms_with_the_zone_chosen():
    for zone in ("Europe/Paris", "America/Argentina/Buenos_Aires", "UTC", None, "Not/A_Zone"):
        assert _rendered(_Once, zone) == _rendered(_Plain, zone)
    html = _rendered(_Once, "America/New_York")
    assert html.count("selected") == 1
    assert '<option selected value="America/New_York">America/New York</option>' in html

"""Forms of the webhooks blueprint."""
from wtforms import SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from portal.forms import Form
from portal.services.webhooks import KINDS


class EndpointForm(Form):
    url = StringField(
        "Address (URL)",
        description="Where your system listens, like https://example.com/iotlock. It must be on the internet.",
        validators=[DataRequired("Enter the address that should receive the alerts."),
                    Length(max=2048, message="This address is too long (2048 characters at most).")],
        render_kw={"type": "url", "inputmode": "url", "autocomplete": "off", "spellcheck": "false"},
    )
    description = StringField(
        "What it is for (optional)",
        validators=[Length(max=200, message="Keep it under 200 characters.")],
    )
    kinds = SelectMultipleField(
        "Alerts to send",
        choices=[SelectChoice(kind, words) for kind, words in KINDS.items()],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )

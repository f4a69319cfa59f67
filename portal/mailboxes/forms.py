"""Forms of the mailboxes blueprint: boxes, PINs and the virtual keypad."""
from wtforms import PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from portal.forms import Form
from portal.gateways.forms import DeviceKeyMixin
from portal.models.devices import MAILBOX_KINDS


class MailboxForm(DeviceKeyMixin, Form):
    name = StringField(
        "Name",
        description="What the household calls it, e.g. “Front mailbox”.",
        validators=[DataRequired("Give the box a name."), Length(max=80, message="Keep it under 80 characters.")],
    )
    kind = RadioField(
        "Kind of box",
        choices=[SelectChoice(value, label) for value, label in MAILBOX_KINDS.items()],
        default="mailbox",
    )


class PinForm(Form):
    label = StringField(
        "Who is it for?",
        description="A name everyone understands, like “Grandma” or “Parcel courier”.",
        validators=[DataRequired("Say who this PIN is for."), Length(max=60, message="Keep it under 60 characters.")],
    )
    digits = PasswordField(
        "Digits",
        description="4 to 8 digits, not starting with 0. Not 1111 or 1234: those are guessed first.",
        validators=[DataRequired("Enter the PIN's digits."), Length(max=16)],
        render_kw={"inputmode": "numeric", "autocomplete": "new-password"},
    )


class ShowPinForm(Form):
    password = PasswordField("Your password", validators=[Optional(), Length(max=128)])


class KeypadForm(Form):
    digits = StringField(
        "Type a PIN on the box",
        validators=[Optional(), Length(max=8, message="The keypad takes up to 8 digits.")],
        render_kw={"inputmode": "numeric", "autocomplete": "off", "maxlength": 8},
    )

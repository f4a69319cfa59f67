"""Forms of the mailboxes blueprint: boxes, PINs and the virtual keypad."""
from wtforms import BooleanField, PasswordField, RadioField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

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


# The kinds of PIN, in the household's words (portal/services/pin_rules.py keeps the rules).
PIN_KINDS = [
    ("always", "Always"),
    ("range", "Between two dates"),
    ("weekly", "On a weekly schedule"),
    ("uses", "A number of opens"),
    ("once", "Once"),
]
# Up to this many window rows are read from a posted form (the service allows 16, and
# says so on the field when more come).
WINDOW_ROWS_READ = 40
WINDOW_ROWS_SHOWN = 16
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form):
        pass  # the service says which boxes may be chosen, on this field


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
    kind = RadioField("When it works", choices=[SelectChoice(v, label) for v, label in PIN_KINDS], default="always",
                      validators=[Optional()])
    starts = StringField("From", validators=[Optional(), Length(max=20)], render_kw={"type": "datetime-local"})
    ends = StringField("Until", validators=[Optional(), Length(max=20)], render_kw={"type": "datetime-local"})
    uses = StringField("Number of opens", description="1 to 1,000.", validators=[Optional(), Length(max=8)],
                       render_kw={"inputmode": "numeric"})
    assigned_to = SelectField("Belongs to", description="Their PINs are removed when they leave the household.",
                              choices=[], validate_choice=False)
    boxes = MultiCheckboxField("Also on", choices=[])
    duress = BooleanField("Duress PIN: opens the box as usual and silently records a duress alarm")


class ShowPinForm(Form):
    password = PasswordField("Your password", validators=[Optional(), Length(max=128)])


class KeypadForm(Form):
    digits = StringField(
        "Type a PIN on the box",
        validators=[Optional(), Length(max=8, message="The keypad takes up to 8 digits.")],
        render_kw={"inputmode": "numeric", "autocomplete": "off", "maxlength": 8},
    )


class DeliveryCodeForm(Form):
    label = StringField(
        "Order or carrier",
        description="Optional, like “DHL” or “Order 1234”.",
        validators=[Optional(), Length(max=60, message="Keep it under 60 characters.")],
    )
    expires = StringField("Works until", description="A week from now unless you choose.",
                          validators=[Optional(), Length(max=20)], render_kw={"type": "datetime-local"})


class SafeModeForm(Form):
    enabled = BooleanField("Lock the keypad after wrong PINs")
    attempts = StringField("Wrong PINs before it locks", validators=[Optional(), Length(max=4)],
                           render_kw={"inputmode": "numeric"}, default="5")
    lockouts = StringField("Lockout minutes, each time longer", description="Like “1, 5, 15”: the last repeats.",
                           validators=[Optional(), Length(max=60)], default="1, 5, 15")
    dual = BooleanField("Two different PINs within 60 seconds to open")


class AssignPinForm(Form):
    assigned_to = SelectField("Belongs to", choices=[], validate_choice=False)

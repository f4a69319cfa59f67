"""Forms of the gateways blueprint (and the small ones the mailbox pages share)."""
from wtforms import PasswordField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from portal.forms import Form

KEY_CHOICES = [
    SelectChoice("generate", "Let IoTLock make a key pair"),
    SelectChoice("paste", "Paste the device's public key"),
]


class DeviceKeyMixin:
    key_mode = RadioField("Key pair", choices=KEY_CHOICES, default="generate")
    public_key = TextAreaField(
        "Public key",
        description="Base64 (44 characters, ending in “=”) or a PEM block that starts with "
        "-----BEGIN PUBLIC KEY-----. Only needed when you paste a key.",
        validators=[Optional(), Length(max=2000)],
        render_kw={"rows": 3, "spellcheck": "false", "autocomplete": "off"},
    )


PROTOCOL_CHOICES = [
    SelectChoice("sealed", "Sealed (recommended)"),
    SelectChoice("seed", "Basic"),
]


class GatewayForm(DeviceKeyMixin, Form):
    name = StringField(
        "Name",
        description="Where it is, so everyone recognises it, e.g. “Hallway gateway”.",
        validators=[DataRequired("Give the gateway a name."), Length(max=80, message="Keep it under 80 characters.")],
    )
    # Not sent by an older form (or a script): the service's default, sealed, applies.
    protocol = RadioField("How it talks to IoTLock", choices=PROTOCOL_CHOICES, default="sealed",
                          validate_choice=False)


class RenameForm(Form):
    name = StringField(
        "New name",
        validators=[DataRequired("Enter a name."), Length(max=80, message="Keep it under 80 characters.")],
    )


class PasswordForm(Form):
    password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password."), Length(max=128)],
    )


class ConfirmForm(Form):
    """A button that only needs the CSRF token (remove, retry, unlock...)."""

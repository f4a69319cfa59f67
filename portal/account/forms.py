"""Forms of the account blueprint. They check presence and size; the service checks the rest
(password policy, duplicates), so every way in obeys the same rules."""
from wtforms import EmailField, HiddenField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.forms import Form, OptionsOnceSelect
from portal.services.api_tokens import SCOPE_WORDS

EMAIL = [
    DataRequired("Enter your email address."),
    Length(max=254, message="An email address has at most 254 characters."),
    Email("Enter a valid email address, like name@example.com."),
]


def strip(value):
    return value.strip() if isinstance(value, str) else value


NEW_PASSWORD_HINT = "At least 8 characters (up to 128). A few unrelated words make a strong, memorable password."


def _household_name(label="Household name", description=None):
    return StringField(
        label,
        description=description,
        filters=[strip],
        validators=[
            DataRequired("Give your household a name."),
            Length(max=80, message="Keep it under 80 characters."),
        ],
    )


def _new_password(label):
    return PasswordField(
        label,
        validators=[
            DataRequired("Choose a password."),
            Length(min=8, max=128, message="Use between 8 and 128 characters."),
        ],
    )


class RegisterForm(Form):
    email = EmailField("Email", validators=EMAIL, filters=[strip])
    password = _new_password("Password")
    household_name = _household_name(
        description="What your household calls itself, e.g. “The Smiths” or “12 Elm Street”."
    )
    # Filled with the browser's zone by static/js/forms.js; UTC without it (editable later).
    time_zone = HiddenField(validators=[Optional(), Length(max=64)], render_kw={"data-browser-zone": ""})


class LoginForm(Form):
    email = EmailField("Email", validators=EMAIL, filters=[strip])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Enter your password."),
            Length(max=128, message="Passwords have at most 128 characters."),
        ],
    )


class ChangeEmailForm(Form):
    email = EmailField("New email", validators=EMAIL, filters=[strip])
    password = PasswordField(
        "Your password",
        description="To confirm it’s you.",
        validators=[DataRequired("Enter your password."), Length(max=128)],
    )


class ChangePasswordForm(Form):
    current_password = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password."), Length(max=128)]
    )
    new_password = _new_password("New password")


class HouseholdNameForm(Form):
    name = _household_name()


class TimeZoneForm(Form):
    # Choices are set by the view (portal.timezones.choices()); the service checks the name.
    time_zone = SelectField("Time zone", choices=[], validate_choice=False, widget=OptionsOnceSelect(),
                            description="PIN hours are written and shown in it. Changing it "
                                        "leaves the PINs you have in the zone they were made in.")


class ForgotPasswordForm(Form):
    email = EmailField("Email", validators=EMAIL, filters=[strip])


class ResetPasswordForm(Form):
    password = _new_password("New password")


class DeleteAccountForm(Form):
    password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password."), Length(max=128)],
    )
    confirm = StringField(
        "Type “delete my account” to confirm",
        filters=[strip],
        validators=[DataRequired("Type “delete my account” to confirm."),
                    Length(max=40, message="Type “delete my account” to confirm.")],
    )


class ApiTokenForm(Form):
    name = StringField(
        "Name",
        description="What will use it, like “Home Assistant” or “Parcel shop script”.",
        validators=[DataRequired("Name the token after what uses it."),
                    Length(max=80, message="Keep the name under 80 characters.")],
    )
    scopes = SelectMultipleField(
        "What it may do",
        choices=[SelectChoice(scope, words) for scope, words in SCOPE_WORDS.items()],
        default=["read"],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    expires_in_days = SelectField(
        "Expires",
        choices=[SelectChoice("30", "In 30 days"), SelectChoice("90", "In 90 days"), SelectChoice("365", "In a year"),
                 SelectChoice("0", "Never")],
        default="90",
    )

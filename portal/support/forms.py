"""Forms of the support console and of the staff member's own sign-in steps."""
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.forms import Form


class SetPasswordForm(Form):
    password = PasswordField(
        "New password",
        description="At least 8 characters; a long phrase is easiest to remember.",
        validators=[
            DataRequired("Choose a password."),
            Length(min=8, max=128, message="Use between 8 and 128 characters."),
        ],
    )
    confirm = PasswordField(
        "Type it again",
        validators=[DataRequired("Type the password again."), EqualTo("password", message="The two passwords differ.")],
    )


class CodeForm(Form):
    code = StringField(
        "Code",
        validators=[DataRequired("Type the code."), Length(max=40, message="That is too long for a code.")],
    )


class RequeueForm(Form):
    """Only the CSRF token: the command is in the URL."""

"""Forms of the members blueprint."""
from flask_wtf import FlaskForm
from wtforms import EmailField

from portal.account.forms import EMAIL, strip


class InviteForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=EMAIL,
        filters=[strip],
    )

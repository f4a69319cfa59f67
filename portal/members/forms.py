"""Forms of the members blueprint."""
from wtforms import EmailField

from portal.account.forms import EMAIL, strip
from portal.forms import Form


class InviteForm(Form):
    email = EmailField(
        "Email address",
        validators=EMAIL,
        filters=[strip],
    )

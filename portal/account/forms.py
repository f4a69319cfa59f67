"""Forms of the account blueprint."""
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length

EMAIL = [DataRequired("Enter your email address."), Email("Enter a valid email address, like name@example.com."), Length(max=254)]


class RegisterForm(FlaskForm):
    email = EmailField("Email", validators=EMAIL)
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Choose a password."),
            Length(min=8, max=128, message="Use between 8 and 128 characters."),
        ],
    )
    household_name = StringField(
        "Household name",
        description="What your household calls itself, e.g. “The Smiths” or “12 Elm Street”.",
        validators=[DataRequired("Give your household a name."), Length(max=80, message="Keep it under 80 characters.")],
    )


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=EMAIL)
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=128)])

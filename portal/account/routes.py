"""Views of the account blueprint: register, log in and out, settings."""
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal import auth
from portal.account import bp
from portal.account.forms import LoginForm, RegisterForm
from portal.services import accounts
from portal.services.errors import ServiceError
from portal.urls import safe_next


@bp.route("/")
def index():
    if current_user.is_authenticated:
        if current_user.is_staff:
            return redirect(url_for("support.index"))
        return redirect(url_for("gateways.index"))
    return render_template("account/welcome.html")


@bp.route("/register", methods=["GET", "POST"])
def register():
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user, household = accounts.register(form.email.data, form.password.data, form.household_name.data)
        except ServiceError as exc:
            getattr(form, exc.field or "email").errors.append(exc.message)
        else:
            auth.begin_session(user, account_id=household.id)
            flash(f"Welcome! Your household “{household.name}” is ready.", "success")
            return redirect(safe_next(request.args.get("next")) or url_for("gateways.index"))
    return render_template("account/register.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors.append("That email and password do not match an account.")
        else:
            auth.begin_session(user)
            return redirect(safe_next(request.args.get("next")) or url_for("account.index"))
    return render_template("account/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    auth.end_session()
    flash("You are logged out.", "info")
    return redirect(url_for("account.login"))


@bp.route("/no-household")
@login_required
def no_household():
    return render_template("account/no_household.html")


@bp.route("/settings")
@login_required
def settings():
    return render_template("account/settings.html")


@bp.route("/household/switch", methods=["POST"])
@login_required
def switch_household():
    return redirect(url_for("gateways.index"))

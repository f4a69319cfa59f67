"""Views of the support console, and the staff member's own sign-in steps (set password,
enrol the authenticator app, type a code)."""
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal.auth import login_facts, required_login_session, user_row
from portal.extensions import login_manager
from portal.htmx import render
from portal.services import staff, support
from portal.services.errors import NotFound, ServiceError
from portal.support import bp
from portal.support.forms import CodeForm, RequeueForm, SetPasswordForm
from portal.support.qr import svg as qr_svg
from portal.urls import safe_next

# Reachable without logging in: the link from `flask staff create` carries its own token.
PUBLIC = {"support.set_password"}
# A staff member who logged in with a password but has not passed the second factor yet.
SIGN_IN_STEPS = {"support.enrol", "support.verify"}
# All such a staff member reaches anywhere in the app: the steps, logging out, static files.
HALF_SIGNED_IN = SIGN_IN_STEPS | PUBLIC | {"account.logout", "static"}
# The one request in the console that changes household data.
WRITES = {"support.requeue"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _in_console() -> bool:
    return request.path == "/support" or request.path.startswith("/support/")


def _to_second_factor():
    step = "support.enrol" if staff.needs_enrolment(user_row()) else "support.verify"
    wanted = request.full_path.rstrip("?") if request.method in SAFE_METHODS else None
    return redirect(url_for(step, next=wanted))


@bp.before_app_request
def second_factor_first():
    """Staff who logged in with a password but have not passed the second factor reach
    nothing but its steps (and logout, static files) anywhere in the app: not their own
    settings, not a household page. Runs before every view's own checks."""
    if request.endpoint is None or request.endpoint in HALF_SIGNED_IN:
        return None
    if not (current_user.is_authenticated and current_user.is_staff):
        return None
    if not staff.second_factor_done(login_facts()):
        return _to_second_factor()
    return None


@bp.before_app_request
def guard():
    """The console's one access rule. Registered app-wide so it also answers for URLs and
    methods no route here has: a PUT or DELETE anywhere under /support is a 403, not a 405."""
    if not _in_console():
        return None
    endpoint = request.endpoint
    if endpoint in PUBLIC:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_staff:
        abort(403, description="The support console is for IoTLock support staff only.")
    if endpoint in SIGN_IN_STEPS:
        return None
    if not staff.second_factor_done(login_facts()):
        return _to_second_factor()
    if request.method not in SAFE_METHODS and endpoint not in WRITES:
        abort(403, description="The support console only reads household data; it cannot change it.")
    return None


# --- the staff member's own sign-in steps ----------------------------------------------

@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token):
    try:
        user = staff.user_for_password_link(token)
    except NotFound:
        return render_template("support/link_invalid.html"), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            staff.set_password_from_link(token, form.password.data)
        except ServiceError as exc:
            getattr(form, exc.field or "password").errors.append(exc.message)
        else:
            flash("Your password is set. Log in, then set up your authenticator app.", "success")
            return redirect(url_for("account.login"))
    return render_template("support/set_password.html", form=form, email=user.email)


@bp.route("/enrol", methods=["GET", "POST"])
def enrol():
    user = user_row()
    if not staff.needs_enrolment(user):
        return redirect(url_for(".verify", next=request.args.get("next")))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            codes = staff.confirm_enrolment(user, required_login_session(), form.code.data)
        except ServiceError as exc:
            form.code.errors.append(exc.message)
        else:
            return render_template(
                "support/recovery_codes.html",
                codes=codes,
                next=safe_next(request.args.get("next")) or url_for(".index"),
            )
    enrolment = staff.begin_enrolment(user)
    return render_template(
        "support/enrol.html",
        form=form,
        secret=enrolment.secret,
        qr=qr_svg(enrolment.uri, "QR code to scan with your authenticator app"),
    )


@bp.route("/verify", methods=["GET", "POST"])
def verify():
    user = user_row()
    if staff.needs_enrolment(user):
        return redirect(url_for(".enrol", next=request.args.get("next")))
    target = safe_next(request.args.get("next")) or url_for(".index")
    if staff.second_factor_done(login_facts()):
        return redirect(target)
    form = CodeForm()
    if form.validate_on_submit():
        try:
            used = staff.verify(user, required_login_session(), form.code.data)
        except ServiceError as exc:
            form.code.errors.append(exc.message)
        else:
            if used == "recovery":
                left = staff.recovery_codes_left(user)
                flash(
                    f"Recovery code used; it will not work again. {left} left. If your phone is "
                    "lost, ask an administrator to reset your second factor.",
                    "warning",
                )
            return redirect(target)
    return render_template("support/verify.html", form=form)


# --- the console ----------------------------------------------------------------------

@bp.route("/")
def index():
    results = support.search_households(
        request.args.get("q", ""), request.args.get("page", 1, type=int)
    )
    return render("support/index.html", "support/_results.html", results=results)


@bp.route("/households/<uuid:account_id>")
def household(account_id):
    try:
        view = support.household_view(user_row(), account_id)
    except NotFound:
        abort(404)
    return render("support/household.html", "support/_devices.html", view=view, form=RequeueForm())


@bp.route("/households/<uuid:account_id>/commands/<uuid:command_id>/requeue", methods=["POST"])
def requeue(account_id, command_id):
    form = RequeueForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        what = support.requeue_delivery(user_row(), account_id, command_id)
    except NotFound:
        abort(404)
    except ServiceError as exc:
        flash(f"Not requeued: {exc.message}", "error")
    else:
        flash(f"Requeued the {what}. The household sees this in its activity log.", "success")
    return redirect(url_for(".household", account_id=account_id) + f"#command-{command_id}")

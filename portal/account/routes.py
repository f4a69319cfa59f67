"""Views of the account blueprint: register, log in and out, settings, switching households,
and the household's activity log."""
from datetime import UTC, datetime

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required, logout_user
from werkzeug.exceptions import HTTPException

from portal import auth, timezones
from portal.account import bp
from portal.account.forms import (
    NEW_PASSWORD_HINT,
    ChangeEmailForm,
    ChangePasswordForm,
    DeleteAccountForm,
    ForgotPasswordForm,
    HouseholdNameForm,
    LoginForm,
    RegisterForm,
    ResetPasswordForm,
    TimeZoneForm,
)
from portal.auth import household_required, owner_required
from portal.crypto import HasherBusy
from portal.htmx import poll_mark, render, unchanged, versioned
from portal.services import accounts, deletion, password_reset
from portal.services import activity as activity_service
from portal.services import members as members_service
from portal.services.errors import Forbidden, NotFound, ServiceError
from portal.services.throttle import Throttled
from portal.urls import get_goes_to, public_link, safe_next


def _field_error(form, exc: ServiceError, default_field: str) -> None:
    """Show a service refusal on the form field it names."""
    field = getattr(form, exc.field or default_field, None) or getattr(form, default_field)
    field.errors = list(field.errors) + [exc.message]


def _refused(form, exc: ServiceError, default_field: str | None = None) -> int:
    """Show a refusal and return the page's status: too many attempts above the form (429),
    a refusal naming a field on it (200), one naming none above the form (409)."""
    if isinstance(exc, Throttled):
        form.form_errors.append(exc.message)
        return 429
    field = exc.field or default_field
    if field is None:
        form.form_errors.append(exc.message)
        return 409
    _field_error(form, exc, field)
    return 200


def _busy(form, exc: HasherBusy) -> tuple[int, dict[str, str]]:
    """Every password-hash slot stayed busy: the form again, with "try again in a few
    seconds" above it, as a 429 with Retry-After (other pages get errors/429.html)."""
    form.form_errors.append(exc.message)
    return 429, {"Retry-After": str(exc.retry_after)}


def _invite_behind(next_path: str | None):
    """The invite a sign-up or login is on its way to, if `next` is a usable invite link."""
    if not next_path:
        return None
    try:
        endpoint, values = current_app.url_map.bind("localhost").match(next_path.split("?")[0], method="GET")
    except HTTPException:
        return None
    if endpoint != "members.accept":
        return None
    try:
        return members_service.describe_invite(values["token"])
    except members_service.InviteUnusable:
        return None


@bp.route("/")
def index():
    if current_user.is_authenticated:
        if current_user.is_staff:
            return redirect(url_for("support.index"))
        return redirect(url_for("gateways.index"))
    return render_template("account/welcome.html")


@bp.route("/register", methods=["GET", "POST"])
def register():
    next_path = safe_next(request.args.get("next"))
    invite = _invite_behind(next_path)
    form = RegisterForm()
    if invite is not None:
        # Someone joining a household by invite does not need a household of their own, and
        # signs up with the address the invite was sent to (shown read-only; a posted
        # other address is ignored). Another address: log in with it, then accept.
        del form.household_name
        form.email.data = invite.email
    status, headers = 200, dict[str, str]()
    if form.validate_on_submit():
        try:
            if invite is not None:
                user = accounts.register_user(form.email.data, form.password.data, client_address=request.remote_addr)
                household = None
            else:
                user, household = accounts.register(
                    form.email.data, form.password.data, form.household_name.data, client_address=request.remote_addr,
                    time_zone=form.time_zone.data,
                )
        except ServiceError as exc:
            status = _refused(form, exc, "email")
        except HasherBusy as exc:
            status, headers = _busy(form, exc)
        else:
            auth.begin_session(user, account_id=household.id if household else None)
            if household is not None:
                flash(f"Welcome! Your household “{household.name}” is ready.", "success")
            return redirect(next_path or url_for("gateways.index"))
    return render_template(
        "account/register.html", form=form, invite=invite, next_path=next_path, password_hint=NEW_PASSWORD_HINT
    ), status, headers


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_path = safe_next(request.args.get("next"))
    form = LoginForm()
    status, headers = 200, dict[str, str]()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, client_address=request.remote_addr)
        except Throttled as exc:
            form.form_errors.append(exc.message)
            status = 429
        except HasherBusy as exc:
            status, headers = _busy(form, exc)
        else:
            if user is None:
                form.password.errors.append("That email and password do not match an account.")
            else:
                auth.begin_session(user)
                return redirect(next_path or url_for("account.index"))
    return render_template(
        "account/login.html", form=form, invite=_invite_behind(next_path), next_path=next_path
    ), status, headers


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    auth.end_session()
    flash("You are logged out.", "info")
    return redirect(url_for("account.login"))


# --- forgot password -----------------------------------------------------------------------

@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link. Known and unknown addresses get the same redirect, after the
    same work (services/password_reset.py)."""
    form = ForgotPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            password_reset.request_reset(
                form.email.data,
                client_address=request.remote_addr,
                link_for=lambda token: public_link("account.reset_password", token=token),
            )
        except ServiceError as exc:
            status = _refused(form, exc, "email")
        else:
            return redirect(url_for("account.forgot_password_sent"))
    return render_template("account/forgot_password.html", form=form), status


@bp.route("/password/forgot/sent")
def forgot_password_sent():
    minutes = int(password_reset.ttl().total_seconds() // 60)
    return render_template("account/forgot_password_sent.html", minutes=minutes)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    """The emailed link: choose a new password. Opening it uses nothing up (mail scanners
    open links); setting the password does, and ends every session of the account."""
    try:
        user = password_reset.user_for_link(token)
    except password_reset.LinkUnusable as exc:
        return render_template("account/reset_unusable.html", message=exc.message), 410
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            password_reset.reset_password(token, form.password.data)
        except password_reset.LinkUnusable as exc:
            return render_template("account/reset_unusable.html", message=exc.message), 410
        except ServiceError as exc:
            _field_error(form, exc, "password")
        else:
            _forget_this_browser()
            flash("Your password is changed, and every session of your login was logged out. "
                  "Log in with your new password.", "success")
            return redirect(url_for("account.login"))
    return render_template(
        "account/reset_password.html", form=form, email=user.email, password_hint=NEW_PASSWORD_HINT
    )


def _forget_this_browser() -> None:
    """Log this browser out without touching its session row (already revoked or deleted)."""
    logout_user()
    session.clear()


@bp.route("/no-household")
@login_required
def no_household():
    return render_template("account/no_household.html", form=HouseholdNameForm(prefix="new"))


@bp.route("/household/new", methods=["GET", "POST"])
@login_required
@get_goes_to(lambda: url_for("account.settings") + "#new-household" if auth.current_membership()
             else url_for("account.no_household"))
def create_household():
    form = HouseholdNameForm(prefix="new")
    if current_user.is_staff:
        abort(403)
    if form.validate_on_submit():
        try:
            household = accounts.add_household(auth.user_row(), form.name.data, auth.current_login_session())
        except ServiceError as exc:
            _field_error(form, exc, "name")
        else:
            flash(f"Your household “{household.name}” is ready.", "success")
            return redirect(url_for("gateways.index"))
    if auth.current_membership() is None:
        return render_template("account/no_household.html", form=form)
    return _settings_page(new_household_form=form)


# --- settings ------------------------------------------------------------------------------

def _settings_page(status=200, **forms):
    membership = auth.current_membership()
    context = {
        "email_form": ChangeEmailForm(prefix="email", formdata=None),
        "password_form": ChangePasswordForm(prefix="pw", formdata=None),
        "household_form": HouseholdNameForm(
            prefix="household", formdata=None, data={"name": membership.account.name if membership else ""}
        ),
        "new_household_form": HouseholdNameForm(prefix="new", formdata=None),
        "zone_form": _zone_form(membership.account.time_zone if membership else None, formdata=None),
    }
    context.update(forms)
    return render_template(
        "account/settings.html",
        membership=membership,
        account=membership.account if membership else None,
        member_count=members_service.member_count(membership.account_id) if membership else 0,
        password_hint=NEW_PASSWORD_HINT,
        **context,
    ), status


def _zone_form(current: str | None, **kwargs) -> TimeZoneForm:
    form = TimeZoneForm(prefix="tz", **kwargs)
    form.time_zone.choices = timezones.labelled_choices()
    if kwargs.get("formdata", True) is None:
        form.time_zone.data = current or timezones.DEFAULT_ZONE
    return form


@bp.route("/settings")
@login_required
def settings():
    return _settings_page()


@bp.route("/settings/email", methods=["GET", "POST"])
@login_required
@get_goes_to(lambda: url_for("account.settings") + "#login-email")
def change_email():
    form = ChangeEmailForm(prefix="email")
    if form.validate_on_submit():
        try:
            accounts.change_email(
                auth.user_row(), form.password.data, form.email.data, client_address=request.remote_addr
            )
        except ServiceError as exc:
            _field_error(form, exc, "email")
        else:
            flash("Your email address is changed. Use the new one to log in.", "success")
            return redirect(url_for("account.settings"))
    return _settings_page(email_form=form)


@bp.route("/settings/password", methods=["GET", "POST"])
@login_required
@get_goes_to(lambda: url_for("account.settings") + "#password")
def change_password():
    form = ChangePasswordForm(prefix="pw")
    if form.validate_on_submit():
        login_session = auth.current_login_session()
        try:
            revoked = accounts.change_password(
                auth.user_row(),
                form.current_password.data,
                form.new_password.data,
                keep_session_id=login_session.id if login_session else None,
                client_address=request.remote_addr,
            )
        except ServiceError as exc:
            _field_error(form, exc, "current_password")
        else:
            # This browser continues under a new session id; the cookie it had is refused.
            auth.rotate_session(auth.user_row())
            others = f" You were logged out on {revoked} other device{'s' if revoked != 1 else ''}." if revoked else ""
            flash("Your password is changed." + others, "success")
            return redirect(url_for("account.settings"))
    return _settings_page(password_form=form)


@bp.route("/settings/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    """Delete one's own login, after the password and typing “delete my account”."""
    if current_user.is_staff:
        abort(403)
    form = DeleteAccountForm()
    status = 200
    if form.validate_on_submit():
        try:
            outcome = deletion.delete_account(
                auth.user_row(), form.password.data, form.confirm.data, client_address=request.remote_addr
            )
        except ServiceError as exc:
            status = _refused(form, exc)
        else:
            _forget_this_browser()
            closed = "".join(f" “{name}” is closed and its devices are being removed." for name in outcome.closed)
            flash(f"Your account {outcome.email} is deleted, and you are logged out everywhere.{closed}", "info")
            return redirect(url_for("account.login"))
    return render_template(
        "account/delete.html", form=form, plan=deletion.plan(auth.user_row()), confirm_word=deletion.CONFIRM_WORD
    ), status


@bp.route("/settings/household", methods=["GET", "POST"])
@owner_required
@get_goes_to(lambda: url_for("account.settings") + "#household")
def rename_household():
    form = HouseholdNameForm(prefix="household")
    if form.validate_on_submit():
        try:
            household = accounts.rename_household(auth.membership_row(), auth.user_row(), form.name.data)
        except Forbidden:
            abort(403)
        except ServiceError as exc:
            _field_error(form, exc, "name")
        else:
            flash(f"The household is now called “{household.name}”.", "success")
            return redirect(url_for("account.settings"))
    return _settings_page(household_form=form)


@bp.route("/settings/household/time-zone", methods=["GET", "POST"])
@owner_required
@get_goes_to(lambda: url_for("account.settings") + "#household")
def change_time_zone():
    form = _zone_form(g.account.time_zone)
    if form.validate_on_submit():
        try:
            household = accounts.set_time_zone(auth.membership_row(), auth.user_row(), form.time_zone.data)
        except Forbidden:
            abort(403)
        except ServiceError as exc:
            _field_error(form, exc, "time_zone")
        else:
            flash(f"The household’s time zone is now {household.time_zone.replace('_', ' ')}.", "success")
            return redirect(url_for("account.settings") + "#household")
    return _settings_page(zone_form=form)


@bp.route("/household/link-state")
@household_required
def link_state():
    """The household's StreamIoT link state alone, for the partial's own polling."""
    return render_template("account/_link_state.html", account=g.account, poll_url=request.path)


@bp.route("/household/switch", methods=["POST"])
@login_required
def switch_household():
    if current_user.is_staff:
        abort(403)
    login_session = auth.required_login_session()
    try:
        household = accounts.switch_household(auth.user_row(), login_session, request.form.get("account_id", ""))
    except NotFound:
        abort(404)
    flash(f"You are now looking at “{household.name}”.", "info")
    return redirect(url_for("gateways.index"))


# --- activity ------------------------------------------------------------------------------

def _activity_filters():
    names = activity_service.mailbox_names(g.account.id)
    mailbox = request.args.get("mailbox") or None
    if mailbox and mailbox not in {str(i) for i in names}:
        mailbox = None
    kind = request.args.get("kind") or None
    if kind not in activity_service.KIND_GROUPS:
        kind = None
    return names, mailbox, kind


@bp.route("/activity")
@household_required
def activity():
    page_no = request.args.get("page", 1, type=int)  # bounded by the service (services/paging.py)
    # The feed polls with the version it shows: while it holds, nothing is read or drawn again
    # (304, which htmx does not swap). A full page carries none: its first poll draws the feed.
    part = activity_service.feed_part(g.account.id, mailbox_id=request.args.get("mailbox"),
                                      kind=request.args.get("kind"), page=page_no, owner=g.membership.is_owner)
    mark = poll_mark(g.account.id)
    if (not_modified := unchanged(part, mark)) is not None:
        return not_modified
    names, mailbox, kind = _activity_filters()
    result = activity_service.list_events(g.account.id, mailbox_id=mailbox, kind=kind, page=page_no,
                                         owner=g.membership.is_owner)
    filters = {k: v for k, v in (("mailbox", mailbox), ("kind", kind)) if v}
    version = activity_service.feed_version(part, mark, result)
    return versioned(*render(
        "activity/index.html",
        partial="activity/_feed.html",
        pager=result,
        events=result.events,
        mailbox_names=names,
        mailbox=mailbox,
        kind=kind,
        filters=filters,
        kind_groups=activity_service.KIND_GROUPS,
        feed_version=version,
    ), version)


@bp.route("/activity.csv")
@household_required
def activity_csv():
    _names, mailbox, kind = _activity_filters()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(activity_service.export_csv(g.account.id, mailbox_id=mailbox, kind=kind,
                                                        owner=g.membership.is_owner)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="iotlock-activity-{stamp}.csv"'},
    )

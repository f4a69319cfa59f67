"""Views of the gateways blueprint (thin: validate, call one service, render)."""
from flask import abort, current_app, flash, g, render_template, request, url_for
from flask_login import current_user

from portal.auth import current_login_session, household_required, membership_row, owner_required
from portal.gateways import bp
from portal.gateways.forms import ConfirmForm, GatewayForm, PasswordForm, RenameForm
from portal.gateways.helpers import (
    account_id,
    discard_key,
    field_error,
    gone,
    json_download,
    key_offered,
    refuse,
    see_other,
    user,
)
from portal.htmx import Drawn, drawn_part, is_htmx, part_mark, poll_mark, render, unchanged, versioned
from portal.services import dashboard, gateway_keys, gateways, reauth
from portal.services.errors import Conflict, NotFound, ServiceError
from portal.urls import get_goes_to


@bp.errorhandler(NotFound)
def _not_found(_exc):
    # Another household's gateway looks exactly like one that never existed.
    return render_template("errors/404.html"), 404


@bp.route("/")
@household_required
def index():
    """The household's dashboard: gateways with their mailboxes, every state at a glance.
    Its live part polls with the version it shows and gets a 304 while that holds (as a box
    page's live part does); while it holds, the part is drawn once for the page and its
    polls alike (htmx.drawn_part). A flash to show is always drawn."""
    owner, per_gateway = g.membership.is_owner, current_app.config["DASHBOARD_BOXES_PER_GATEWAY"]
    part = dashboard.dashboard_part(account_id(), owner=owner, per_gateway=per_gateway)
    mark = part_mark(account_id())
    if is_htmx() and (not_modified := unchanged(part, mark)) is not None:
        return not_modified

    def draw() -> Drawn:
        board = dashboard.dashboard(g.account, owner=owner, per_gateway=per_gateway, mark=mark)
        version = dashboard.dashboard_version(part, mark, board)
        html = render_template("gateways/_dashboard.html", board=board, board_version=version)
        return Drawn(html, version, {"has_gateways": bool(board.gateways)})

    drawn = drawn_part(part, current_user.id, mark, draw)
    if is_htmx():
        return versioned(drawn.html, 200, drawn.version)
    return render_template("gateways/index.html", dashboard=drawn, account=g.account)


@bp.route("/new", methods=["GET", "POST"])
@household_required
def add():
    form = GatewayForm()
    if form.validate_on_submit():
        try:
            gateway, _private_key = gateways.add_gateway(
                account_id(), user(), name=form.name.data, key_mode=form.key_mode.data, public_key=form.public_key.data,
                protocol=form.protocol.data or gateways.DEFAULT_PROTOCOL,
            )
        except ServiceError as exc:
            field_error(form, exc)
        else:
            flash(f"Gateway “{gateway.name}” added. IoTLock is setting it up now.", "success")
            return see_other(url_for(".show", gateway_id=gateway.id))
    return render_template("gateways/add.html", form=form)


@bp.route("/<uuid:gateway_id>")
@household_required
def show(gateway_id):
    """A gateway with its set-up, keys and boxes. Its live part polls with the version it
    shows, as the dashboard's does."""
    owner = g.membership.is_owner
    part = dashboard.gateway_live_part(account_id(), gateway_id, owner=owner)
    mark = poll_mark(account_id(), shows_flashes=True)
    if (not_modified := unchanged(part, mark)) is not None:
        return not_modified
    try:
        page = dashboard.gateway_page(account_id(), gateway_id, owner=owner, mark=mark)
    except NotFound:
        if is_htmx():
            return gone(url_for(".index"), "The gateway was removed.")
        raise
    version = dashboard.gateway_live_version(part, mark, page)
    return versioned(*render(
        "gateways/show.html",
        "gateways/_gateway_live.html",
        view=page,
        key_held=key_offered("gateway", gateway_id),
        gateway_version=version,
    ), version)


@bp.route("/<uuid:gateway_id>/rename", methods=["GET", "POST"])
@household_required
def rename(gateway_id):
    form = RenameForm()
    if form.validate_on_submit():
        try:
            gateway = gateways.rename_gateway(account_id(), gateway_id, user(), form.name.data)
        except ServiceError as exc:
            field_error(form, exc)
        else:
            flash(f"Renamed to “{gateway.name}”.", "success")
            return see_other(url_for(".show", gateway_id=gateway.id))
    gateway = gateways.get_gateway(account_id(), gateway_id)
    if request.method == "GET":
        form.name.data = gateway.name
    return render_template("gateways/rename.html", form=form, gateway=gateway)


@bp.route("/<uuid:gateway_id>/remove", methods=["GET", "POST"])
@household_required
def remove(gateway_id):
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            gateway = gateways.remove_gateway(account_id(), gateway_id, user())
        except ServiceError as exc:
            return refuse(exc, url_for(".show", gateway_id=gateway_id))
        flash(f"Removing “{gateway.name}”: the gateway is told to forget everything, then "
              "it is signed off the device service.", "info")
        return see_other(url_for(".show", gateway_id=gateway_id))
    page = dashboard.gateway_page(account_id(), gateway_id, owner=g.membership.is_owner)
    return render_template("gateways/remove.html", form=form, view=page)


@bp.route("/<uuid:gateway_id>/retry", methods=["POST"])
@household_required
def retry(gateway_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        gateways.retry_gateway(account_id(), gateway_id, user())
    except ServiceError as exc:
        return refuse(exc, url_for(".show", gateway_id=gateway_id))
    flash("Trying again.", "info")
    return see_other(url_for(".show", gateway_id=gateway_id))


@bp.route("/<uuid:gateway_id>/new-key", methods=["POST"])
@owner_required
def rotate_key(gateway_id):
    ConfirmForm().validate_on_submit() or abort(400)
    try:
        gateway, _private_key = gateways.rotate_gateway_key(membership_row(), gateway_id, user())
    except ServiceError as exc:
        return refuse(exc, url_for(".show", gateway_id=gateway_id))
    flash("New key pair made. Download the settings now: the private key is in the next download only.", "success")
    return see_other(url_for(".settings", gateway_id=gateway.id))


def _settings_page(gateway_id, form, status=200):
    access = gateways.settings_access(membership_row(), gateway_id)
    return render_template(
        "gateways/settings.html",
        form=form,
        access=access,
        key_held=key_offered("gateway", gateway_id),
    ), (status if access.allowed else 403)


def _settings_url(gateway_id) -> str:
    """Where a GET of the download URL goes (a refused password rendered there, reloaded):
    the settings page, for those who may download (404/403 like the download otherwise)."""
    if not gateways.settings_access(membership_row(), gateway_id).allowed:
        abort(403)
    return url_for(".settings", gateway_id=gateway_id)


@bp.route("/<uuid:gateway_id>/settings")
@household_required
def settings(gateway_id):
    """The device settings: owners only (members read why); each download asks the password."""
    return _settings_page(gateway_id, PasswordForm(formdata=None))


@bp.route("/<uuid:gateway_id>/settings/download", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda gateway_id: _settings_url(gateway_id))
def settings_download(gateway_id):
    form = PasswordForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        if form.password.errors and form.password.data:
            return _settings_page(gateway_id, form)  # refused on the field (e.g. a control character)
    try:
        gateway, document = gateways.device_settings(membership_row(), gateway_id, user(), password=form.password.data)
    except ServiceError as exc:
        if isinstance(exc, Conflict):
            return refuse(exc, url_for(".settings", gateway_id=gateway_id))
        if not form.password.errors:
            field_error(form, exc)
        return _settings_page(gateway_id, form)
    return json_download(document, gateway.name)


@bp.route("/<uuid:gateway_id>/key/discard", methods=["POST"])
@household_required
def discard_private_key(gateway_id):
    """The member does not want the private key IoTLock made for them: it is deleted."""
    ConfirmForm().validate_on_submit() or abort(400)
    gateways.get_gateway(account_id(), gateway_id)
    return discard_key("gateway", gateway_id, url_for(".settings", gateway_id=gateway_id))


@bp.route("/<uuid:gateway_id>/replace-keys", methods=["GET", "POST"])
@owner_required
def replace_keys(gateway_id):
    """Replace the gateway's keys (its device key): asks for the password, then the job runs."""
    form = PasswordForm()
    fresh = reauth.reauth_is_fresh(current_login_session())
    if request.method == "POST":
        ConfirmForm().validate_on_submit() or abort(400)  # the CSRF token
        if fresh or form.validate():
            try:
                gateway_keys.start_replacement(membership_row(), user(), current_login_session(), gateway_id,
                                               form.password.data)
            except Conflict as exc:
                return refuse(exc, url_for(".show", gateway_id=gateway_id))
            except ServiceError as exc:
                field_error(form, exc)
            else:
                flash("Replacing the gateway’s keys. Follow the steps below.", "info")
                return see_other(url_for(".show", gateway_id=gateway_id))
    page = dashboard.gateway_page(account_id(), gateway_id, owner=True)
    return render_template("gateways/replace_keys.html", form=form, view=page, needs_password=not fresh)

"""Views of the alerts blueprint (thin: read the form, call portal/services/alerts.py, render)."""
from flask import abort, flash, g, redirect, render_template, request, url_for

from portal.alerts import bp
from portal.auth import household_required, membership_row, owner_required
from portal.extensions import csrf
from portal.htmx import asked_version, not_modified, versioned
from portal.models import ALERT_KINDS, CHANNELS
from portal.services import alerts, push
from portal.services.errors import Forbidden, NotFound, ValidationFailed
from portal.services.paging import clamp_page
from portal.urls import get_goes_to


@bp.route("/")
@household_required
def index():
    page = clamp_page(request.args.get("page", type=int))
    listed, has_next = alerts.list_alerts(g.membership, page)
    return render_template("alerts/index.html", listed=listed, page=page, has_next=has_next,
                           unread=alerts.unread_count(g.membership))


@bp.app_template_global()
def bell_version(unread: int, here: bool) -> str:
    """What the bell shows, as its ETag: its count, and whether the page is an alerts page."""
    return f"bell-{unread}-{int(bool(here))}"


@bp.route("/bell")
@household_required
def bell():
    """The bell alone, polled by every page (templates/alerts/_bell.html): a 304 while the
    version it asks with is what it would show."""
    unread, here = alerts.unread_count(g.membership), request.args.get("here") == "1"
    version = bell_version(unread, here)
    if asked_version() == version:
        return not_modified(version)
    return versioned(render_template("alerts/_bell.html", unread=unread, here=here), 200, version)


@bp.route("/read", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda: url_for("alerts.index"))
def read_all():
    alerts.mark_read(g.membership)
    return redirect(url_for("alerts.index"), code=303)


@bp.route("/<notification_id>/read", methods=["POST"])
@household_required
def read_one(notification_id):
    try:
        alerts.mark_read(g.membership, notification_id)
    except NotFound:
        abort(404)
    return redirect(url_for("alerts.index", page=request.form.get("page", type=int)), code=303)


def _chosen() -> set[tuple[str, str]]:
    """The (kind, channel) boxes ticked on a matrix form: fields named "<kind>.<channel>"."""
    pairs = set()
    for name in request.form:
        kind, _, channel = name.partition(".")
        if kind in ALERT_KINDS and channel in CHANNELS:
            pairs.add((kind, channel))
    return pairs


def _box_id():
    return request.values.get("box") or None


def _settings_page(status=200, quiet_error=None, quiet_values=None):
    box_id = _box_id()
    try:
        rows = alerts.preference_rows(membership_row(), box_id)
    except NotFound:
        abort(404)
    boxes = alerts.box_choices(g.account.id)
    own = alerts.boxes_with_own_choices(membership_row())
    return render_template(
        "alerts/settings.html", rows=rows, boxes=boxes, box_id=box_id, own=own,
        box=next((b for b in boxes if str(b.id) == str(box_id)), None),
        channels=alerts.CHANNEL_WORDS, membership=membership_row(),
        quiet_error=quiet_error, quiet_values=quiet_values or {},
        push_on=push.enabled(), has_push=push.has_subscription(g.membership.user_id),
    ), status


@bp.route("/settings", methods=["GET", "POST"])
@household_required
def settings():
    if request.method == "POST":
        try:
            alerts.save_preferences(membership_row(), _chosen(), _box_id())
        except NotFound:
            abort(404)
        flash("Your alert choices are saved.", "success")
        return redirect(url_for("alerts.settings", box=_box_id()), code=303)
    return _settings_page()


@bp.route("/settings/box", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda: url_for("alerts.settings"))
def forget_box():
    try:
        alerts.forget_box_choices(membership_row(), _box_id())
    except NotFound:
        abort(404)
    flash("That box follows your choices for all boxes again.", "success")
    return redirect(url_for("alerts.settings"), code=303)


@bp.route("/settings/quiet", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda: url_for("alerts.settings") + "#quiet")
def quiet():
    values = {"quiet_from": request.form.get("quiet_from", ""), "quiet_until": request.form.get("quiet_until", "")}
    try:
        alerts.set_quiet_hours(membership_row(), values["quiet_from"], values["quiet_until"])
    except ValidationFailed as exc:
        return _settings_page(422, quiet_error=exc, quiet_values=values)
    flash("Quiet hours saved." if values["quiet_from"] else "Quiet hours are off.", "success")
    return redirect(url_for("alerts.settings") + "#quiet", code=303)


@bp.route("/test", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda: url_for("alerts.settings") + "#test")
def test():
    channel = request.form.get("channel", "")
    try:
        alerts.send_test(membership_row(), channel)
    except ValidationFailed as exc:
        flash(exc.message, "error")
        return redirect(url_for("alerts.settings") + "#test", code=303)
    flash({"portal": "Test sent: it is in your alerts now.",
           "email": "Test email on its way: check your inbox in a minute.",
           "push": "Test push on its way to your browsers."}[channel], "success")
    return redirect(url_for("alerts.settings") + "#test", code=303)


@bp.route("/defaults", methods=["GET", "POST"])
@owner_required
def defaults():
    if request.method == "POST":
        try:
            alerts.save_preferences(membership_row(), _chosen(), household=True)
        except Forbidden:
            abort(403)
        flash("The household’s alert defaults are saved.", "success")
        return redirect(url_for("alerts.defaults"), code=303)
    return render_template("alerts/defaults.html", rows=alerts.preference_rows(membership_row(), household=True),
                           channels=alerts.CHANNEL_WORDS)


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: the mail provider posts "List-Unsubscribe=One-Click", without a session
def unsubscribe(token):
    """GET asks (link scanners open links); POST stops the emails, from the page's button or
    from the mail client's one-click."""
    try:
        found = alerts.unsubscribe(token) if request.method == "POST" else alerts.read_unsubscribe(token)
    except NotFound as exc:
        return render_template("alerts/unsubscribe.html", problem=exc.message), 404
    return render_template("alerts/unsubscribe.html", found=found, done=request.method == "POST")

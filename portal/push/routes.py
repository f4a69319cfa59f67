"""Views of the push blueprint: the browser subscribes and unsubscribes (JSON, from
static/js/push.js), and a page lists the member's browsers with a "Remove" for each."""
from flask import abort, flash, jsonify, redirect, render_template, request, url_for

from portal.auth import household_required, user_row
from portal.push import bp
from portal.services import push
from portal.services.errors import NotFound, ValidationFailed
from portal.urls import get_goes_to


@bp.route("/")
@household_required
def devices():
    return render_template("push/devices.html", subscriptions=push.subscriptions_of(user_row()),
                           server_key=push.application_server_key())


@bp.route("/subscribe", methods=["POST"])
@household_required
def subscribe():
    if not push.enabled():
        return jsonify(error="Push alerts are off on this portal."), 409
    try:
        row = push.subscribe(user_row(), request.get_json(silent=True), request.headers.get("User-Agent"))
    except ValidationFailed as exc:
        return jsonify(error=exc.message), 400
    return jsonify(id=str(row.id), label=row.label), 201


@bp.route("/unsubscribe", methods=["POST"])
@household_required
def unsubscribe():
    body = request.get_json(silent=True)
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    if not isinstance(endpoint, str):
        return jsonify(error="Which browser? The request names no endpoint."), 400
    push.unsubscribe(user_row(), endpoint)
    return "", 204


@bp.route("/remove", methods=["GET", "POST"])
@household_required
@get_goes_to(lambda: url_for("push.devices"))
def remove():
    try:
        push.remove(user_row(), request.form.get("subscription_id", ""))
    except NotFound:
        abort(404)
    flash("That browser no longer gets alerts.", "success")
    return redirect(url_for("push.devices"))

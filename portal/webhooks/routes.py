"""Views of the webhooks blueprint (owners only; thin: validate, call one service, render).

A new or rotated secret is shown once, in the answer to the POST that made it: it is never
stored in plain text, so there is no redirect after those two."""
from flask import abort, flash, g, redirect, render_template, url_for

from portal.auth import membership_row, owner_required
from portal.services import webhooks
from portal.services.errors import Forbidden, NotFound, ServiceError
from portal.urls import get_goes_to
from portal.webhooks import bp
from portal.webhooks.forms import EndpointForm


def _index(form=None, new_secret=None, status=200):
    return render_template(
        "webhooks/index.html",
        endpoints=webhooks.list_endpoints(g.account.id),
        kinds=webhooks.KINDS,
        form=form or EndpointForm(formdata=None),
        new_secret=new_secret,
    ), status


def _run(action, *args):
    """Call one service action; 404/403 for NotFound/Forbidden, a flash for other refusals."""
    try:
        return action(membership_row(), *args), None
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except ServiceError as exc:
        flash(exc.message, "error")
        return None, redirect(url_for("webhooks.index"))


@bp.route("/")
@owner_required
def index():
    return _index()


@bp.route("/add", methods=["GET", "POST"])
@owner_required
@get_goes_to(lambda: url_for("webhooks.index") + "#add")
def add():
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            endpoint, secret = webhooks.add_endpoint(membership_row(), url=form.url.data,
                                                     description=form.description.data, kinds=form.kinds.data)
        except Forbidden:
            abort(403)
        except ServiceError as exc:
            target = getattr(form, exc.field or "url")
            target.errors = list(target.errors) + [exc.message]
        else:
            return _index(new_secret=(endpoint, secret))
    return _index(form=form, status=200)


@bp.route("/<uuid:endpoint_id>/rotate", methods=["POST"])
@owner_required
def rotate(endpoint_id):
    rotated, refused = _run(webhooks.rotate_secret, endpoint_id)
    if refused:
        return refused
    endpoint, secret = rotated
    return _index(new_secret=(endpoint, secret))


def _act(action, args, message):
    """Run one action on an endpoint, then back to the list with `message(result)`."""
    result, refused = _run(action, *args)
    if refused:
        return refused
    flash(message(result), "success")
    return redirect(url_for("webhooks.index"))


@bp.route("/<uuid:endpoint_id>/turn-off", methods=["POST"])
@owner_required
def turn_off(endpoint_id):
    return _act(webhooks.set_enabled, (endpoint_id, False), lambda e: f"Alerts no longer go to {e.url}.")


@bp.route("/<uuid:endpoint_id>/turn-on", methods=["POST"])
@owner_required
def turn_on(endpoint_id):
    return _act(webhooks.set_enabled, (endpoint_id, True), lambda e: f"Alerts go to {e.url} again.")


@bp.route("/<uuid:endpoint_id>/delete", methods=["POST"])
@owner_required
def delete(endpoint_id):
    return _act(webhooks.delete_endpoint, (endpoint_id,),
                lambda url: f"The webhook to {url} is deleted, with its delivery log.")


@bp.route("/<uuid:endpoint_id>/log")
@owner_required
def log(endpoint_id):
    found, refused = _run(webhooks.delivery_log, endpoint_id)
    if refused:
        return refused
    endpoint, entries = found
    return render_template("webhooks/log.html", endpoint=endpoint, entries=entries, kinds=webhooks.KINDS)


@bp.route("/deliveries/<uuid:delivery_id>/resend", methods=["POST"])
@owner_required
def resend(delivery_id):
    delivery, refused = _run(webhooks.resend, delivery_id)
    if refused:
        return refused
    flash("The message is on its way again, with the same webhook-id.", "success")
    return redirect(url_for("webhooks.log", endpoint_id=delivery.endpoint_id))

"""Views of the members blueprint (thin: validate, call one service, render).

Actions answer htmx with the refreshed members panel and everyone else with a redirect, so
every button works without JavaScript too."""
from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from portal import auth
from portal.auth import household_required, owner_required
from portal.htmx import is_htmx, render
from portal.members import bp
from portal.members.forms import InviteForm
from portal.services import members, pins
from portal.services.errors import Forbidden, NotFound, ServiceError
from portal.urls import get_goes_to


def _panel(form=None, new_invite=None, notice=None, status=200):
    """The members page, or only its panel for htmx."""
    return render(
        "members/index.html",
        partial="members/_panel.html",
        status=status,
        membership=auth.membership_row(),
        members=members.list_members(g.account.id),
        invites=members.list_open_invites(g.account.id) if auth.membership_row().is_owner else [],
        pin_counts=pins.assigned_counts(g.account.id),
        form=form or InviteForm(formdata=None),
        new_invite=new_invite,
        notice=notice,
    )


def _done(message: str, category: str = "success"):
    """After an action: the fresh panel for htmx, a redirect with a flash otherwise."""
    if is_htmx():
        return _panel(notice=(category, message))
    flash(message, category)
    return redirect(url_for("members.index"))


def _run(action, *args):
    """Call one service action; 404/403 for NotFound/Forbidden, a message for other refusals."""
    try:
        return action(auth.membership_row(), auth.user_row(), *args), None
    except NotFound:
        abort(404)
    except Forbidden:
        abort(403)
    except ServiceError as exc:
        return None, _done(exc.message, "error")


@bp.route("/")
@household_required
def index():
    return _panel()


def _invite_link(token: str) -> str:
    """The absolute invite link: on PUBLIC_URL when set (behind a proxy the request's own
    host may not be the one invitees can reach), else on the host the owner is using."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for("members.accept", token=token)
    return url_for("members.accept", token=token, _external=True)


@bp.route("/invite", methods=["GET", "POST"])
@owner_required
@get_goes_to(lambda: url_for("members.index") + "#invite")
def invite():
    form = InviteForm()
    if form.validate_on_submit():
        try:
            new_invite = members.invite(
                auth.membership_row(),
                auth.user_row(),
                form.email.data,
                link_for=_invite_link,
            )
        except Forbidden:
            abort(403)
        except ServiceError as exc:
            form.email.errors = list(form.email.errors) + [exc.message]
        else:
            # The link is shown once, in this answer; it is never stored, so there is no redirect.
            # The panel's form starts empty again.
            return _panel(new_invite=new_invite)
    return _panel(form=form)


@bp.route("/invites/<invite_id>/revoke", methods=["POST"])
@owner_required
def revoke_invite(invite_id):
    email, refused = _run(members.revoke_invite, invite_id)
    return refused or _done(f"The invite for {email} is revoked; its link no longer works.")


@bp.route("/<membership_id>/make-owner", methods=["POST"])
@owner_required
def make_owner(membership_id):
    email, refused = _run(members.make_owner, membership_id)
    return refused or _done(f"{email} is now an owner.")


@bp.route("/<membership_id>/remove", methods=["POST"])
@owner_required
def remove(membership_id):
    email, refused = _run(members.remove_member, membership_id)
    return refused or _done(f"{email} is no longer a member and was logged out.")


@bp.route("/step-down", methods=["POST"])
@household_required
def step_down():
    _row, refused = _run(members.step_down)
    return refused or _done("You are no longer an owner of this household.")


@bp.route("/leave", methods=["POST"])
@household_required
def leave():
    name = g.account.name
    try:
        members.leave(auth.membership_row(), auth.user_row())
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("members.index"))
    flash(f"You left “{name}”.", "info")
    return redirect(url_for("account.index"))


@bp.route("/join/<token>", methods=["GET", "POST"])
def accept(token):
    """The invite link: who invites you where, then a button to join (after signing up or
    logging in, which come back here through `next`)."""
    try:
        invite = members.describe_invite(token)
    except members.InviteUnusable as exc:
        return _unusable(exc.reason)
    if request.method == "POST":
        if not current_user.is_authenticated:
            return redirect(url_for("account.login", next=request.path))
        try:
            household = members.accept_invite(token, auth.user_row(), auth.current_login_session())
        except members.InviteUnusable as exc:
            return _unusable(exc.reason)
        except ServiceError as exc:
            flash(exc.message, "info")
            return redirect(url_for("account.index"))
        flash(f"Welcome to “{household.name}”! You now share its devices with the other members.", "success")
        return redirect(url_for("members.index"))
    already = current_user.is_authenticated and members.is_member(current_user.id, invite.invite.account_id)
    return render_template("members/accept.html", invite=invite, token=token, already_member=already)


def _unusable(reason: str):
    status = 404 if reason == members.INVITE_UNKNOWN else 410
    return render_template("members/invite_unusable.html", reason=reason), status

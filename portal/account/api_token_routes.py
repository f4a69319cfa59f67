"""The API tokens page (Settings → API tokens): a member makes a token (its secret shown
once, in the answer to the POST that made it: there is no redirect after it), sees when and
from where each was last used, and revokes one."""
from datetime import timedelta

from flask import abort, flash, g, redirect, render_template, url_for

from portal.account import bp
from portal.account.forms import ApiTokenForm
from portal.auth import household_required, membership_row, user_row
from portal.models import utcnow
from portal.services import api_tokens
from portal.services.errors import NotFound, ServiceError


def _page(form=None, new_secret=None, status=200):
    return render_template(
        "account/api_tokens.html",
        tokens=api_tokens.list_tokens(g.membership),
        status_of=api_tokens.status_of,
        scope_words=api_tokens.SCOPE_WORDS,
        form=form or ApiTokenForm(formdata=None),
        new_secret=new_secret,
    ), status


@bp.route("/settings/api-tokens", methods=["GET", "POST"])
@household_required
def api_tokens_page():
    form = ApiTokenForm()
    if not form.is_submitted():
        return _page()
    if form.validate():
        days = int(form.expires_in_days.data or 0)
        try:
            token, secret = api_tokens.create_token(
                membership_row(), user_row(), name=form.name.data, scopes=form.scopes.data,
                expires_at=utcnow() + timedelta(days=days) if days else None)
        except ServiceError as exc:
            target = getattr(form, exc.field or "name", form.name)
            target.errors = list(target.errors) + [exc.message]
        else:
            return _page(new_secret=(token, secret))
    return _page(form=form, status=400)


@bp.route("/settings/api-tokens/<uuid:token_id>/revoke", methods=["POST"])
@household_required
def revoke_api_token(token_id):
    try:
        token = api_tokens.revoke_token(membership_row(), user_row(), token_id)
    except NotFound:
        abort(404)
    flash(f"The API token “{token.name}” is revoked: it no longer works.", "success")
    return redirect(url_for("account.api_tokens_page"))

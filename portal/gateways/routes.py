"""Views of the gateways blueprint (thin: validate, call one service, render)."""
from flask import g, render_template

from portal.auth import household_required
from portal.gateways import bp


@bp.route("/")
@household_required
def index():
    """The household's dashboard: gateways with their mailboxes, every state at a glance."""
    return render_template("gateways/index.html", account=g.account)

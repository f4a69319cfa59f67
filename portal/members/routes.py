"""Views of the members blueprint (thin: validate, call one service, render)."""
from flask import render_template

from portal.auth import household_required
from portal.members import bp


@bp.route("/")
@household_required
def index():
    return render_template("members/index.html")

"""Views of the support console."""
from flask import abort

from portal.support import bp


@bp.route("/")
def index():
    abort(404)

"""The support blueprint."""
from flask import Blueprint

bp = Blueprint("support", __name__)

from portal.support import routes  # noqa: E402,F401

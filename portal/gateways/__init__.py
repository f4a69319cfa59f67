"""The gateways blueprint."""
from flask import Blueprint

bp = Blueprint("gateways", __name__)

from portal.gateways import routes  # noqa: E402,F401

"""The account blueprint."""
from flask import Blueprint

bp = Blueprint("account", __name__)

from portal.account import api_token_routes, routes  # noqa: E402,F401

"""The mailboxes blueprint."""
from flask import Blueprint

bp = Blueprint("mailboxes", __name__)

from portal.mailboxes import pin_routes, routes  # noqa: E402,F401

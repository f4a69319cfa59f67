"""The webhooks blueprint: owners send the household's alerts to their own systems."""
from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from portal.webhooks import routes  # noqa: E402,F401

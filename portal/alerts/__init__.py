"""The alerts blueprint: the bell and its list, each member's alert settings (kinds, boxes,
channels, quiet hours, a test per channel), the household's defaults, and one-click
unsubscribe from alert emails."""
from flask import Blueprint

bp = Blueprint("alerts", __name__)

from portal.alerts import routes  # noqa: E402,F401

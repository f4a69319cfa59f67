"""The push blueprint: a member's browsers that get alerts by Web Push."""
from flask import Blueprint

bp = Blueprint("push", __name__)

from portal.push import routes  # noqa: E402,F401

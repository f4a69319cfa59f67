"""The members blueprint."""
from flask import Blueprint

bp = Blueprint("members", __name__)

from portal.members import routes  # noqa: E402,F401

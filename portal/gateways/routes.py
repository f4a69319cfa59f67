"""Views of the gateways blueprint (thin: validate, call one service, render)."""
from portal.gateways import bp  # noqa: F401

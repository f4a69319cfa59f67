"""Views of the mailboxes blueprint (thin: validate, call one service, render)."""
from portal.mailboxes import bp  # noqa: F401

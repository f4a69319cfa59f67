"""Outgoing email: sent over SMTP when MAIL_SERVER is set, otherwise written to the log so
a development portal still shows what would have been sent."""
import logging
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app

log = logging.getLogger(__name__)

SENT = "sent"
LOGGED = "logged"
FAILED = "failed"


def send(to: str, subject: str, body: str, *, html: str | None = None, headers: dict[str, str] | None = None,
         message_id: str | None = None) -> str:
    """Send an email (plain text, and an HTML alternative when given); returns SENT, LOGGED
    (no MAIL_SERVER) or FAILED. Never raises for delivery problems: the callers are jobs,
    which retry a FAILED one. `message_id` keeps a resent message recognisable as the same."""
    cfg = current_app.config
    if not cfg.get("MAIL_SERVER"):
        log.info("MAIL_SERVER is not set, so this email was not sent.\nTo: %s\nSubject: %s\n\n%s", to, subject, body)
        return LOGGED
    message = EmailMessage()
    message["From"] = cfg["MAIL_SENDER"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain=cfg["MAIL_SENDER"].rsplit("@", 1)[-1].strip("> ") or None)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    try:
        with smtplib.SMTP(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=cfg.get("MAIL_TIMEOUT", 10)) as smtp:
            if cfg.get("MAIL_USE_TLS"):
                smtp.starttls()
            if cfg.get("MAIL_USERNAME"):
                smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        # The body may hold a one-time link: say what failed, never what was in it.
        log.warning("could not email %s (subject %r) via %s: %s", to, subject, cfg["MAIL_SERVER"], exc)
        return FAILED
    return SENT

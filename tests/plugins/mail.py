"""A real SMTP server (aiosmtpd) on a free local port, with the app's MAIL_* settings
pointed at it: `smtp_server.messages` are the emails it accepted (email.message objects),
and `smtp_server.refuse = True` makes it answer every message with a temporary failure
(451), as a relay that is down for a while does."""
import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


class Inbox:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.refuse = False
        self.refused = 0
        self.port = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (aiosmtpd's hook name)
        if self.refuse:
            self.refused += 1
            return "451 Requested action aborted: try again later"
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.messages.append(message)  # type: ignore[arg-type]  (policy.default makes EmailMessage)
        return "250 Message accepted"

    def text_of(self, message: EmailMessage) -> str:
        body = message.get_body(("plain",))
        return body.get_content() if body is not None else ""

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_inbox():
    """The SMTP server alone (for a live server's settings): its Inbox, with `.port`."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()


def mail_settings(inbox: Inbox) -> dict:
    """The app's MAIL_* settings for sending to `inbox` (plain SMTP, no TLS, no login)."""
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": inbox.port, "MAIL_USE_TLS": False, "MAIL_USERNAME": "",
            "MAIL_TIMEOUT": 5}


@pytest.fixture
def smtp_server(app, smtp_inbox):
    """The SMTP server, and the test app sending to it."""
    app.config.update(mail_settings(smtp_inbox))
    return smtp_inbox

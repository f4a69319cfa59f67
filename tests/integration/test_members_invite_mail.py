"""The invite email leaves the web request: the page answers at once with the link, and the
worker's "mail.invite" job sends it, retried through a mail outage, the link encrypted in it."""
import logging
import re
import socket

import pytest
import sqlalchemy as sa

import portal.services.members as members_service
from portal.extensions import db
from portal.jobs.runner import drain
from portal.models import Invite, Job, utcnow
from portal.models.jobs import JOB_QUEUED
from tests.plugins.accounts import PASSWORD, invite_link_from


@pytest.fixture
def owner(auth, make_household):
    user, account = make_household("owner@example.com", "Elm Street")
    auth.login("owner@example.com", PASSWORD)
    return user


def test_without_mail_server_the_email_is_written_to_the_log(app, auth, owner, caplog):
    with caplog.at_level(logging.INFO, logger="portal.services.mail"):
        html = auth.invite().get_data(as_text=True)
        drain(app)
    link = re.search(r'id="invite-link"[^>]*value="([^"]+)"', html).group(1)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "To: guest@example.com" in logged
    assert link in logged
    assert "Email isn’t set up on this portal" in html


def test_with_mail_server_the_link_is_emailed(app, auth, owner, smtp_server):
    html = auth.invite().get_data(as_text=True)
    path = invite_link_from(html)
    assert "We’re also emailing it to guest@example.com" in html
    assert smtp_server.messages == []  # sent by the worker, never inside the request
    drain(app)
    [message] = smtp_server.messages
    assert message["To"] == "guest@example.com"
    assert "Elm Street" in message["Subject"]
    assert path in smtp_server.text_of(message)


def test_a_mail_server_that_never_answers_does_not_block_the_invite(app, auth, owner):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=silent.getsockname()[1], MAIL_TIMEOUT=0.5)
        html = auth.invite().get_data(as_text=True)
        drain(app)
    finally:
        silent.close()
    assert invite_link_from(html)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Invite)) == 1
    db.session.expire_all()
    [job] = db.session.scalars(sa.select(Job).where(Job.kind == members_service.SEND_INVITE)).all()
    assert job.state == JOB_QUEUED and job.attempts == 1  # retried later, the link not lost
    assert "mail server" in (job.last_error or "")


def test_an_invite_email_lost_to_an_outage_arrives_once_when_the_server_is_back(app, auth, owner, smtp_server):
    smtp_server.refuse = True
    path = invite_link_from(auth.invite().get_data(as_text=True))
    drain(app)
    assert smtp_server.refused == 1 and smtp_server.messages == []
    smtp_server.refuse = False
    db.session.execute(sa.update(Job).values(run_after=utcnow()))
    db.session.commit()
    drain(app)
    drain(app)
    [message] = smtp_server.messages
    assert path in smtp_server.text_of(message)
    job = db.session.scalars(sa.select(Job).where(Job.kind == members_service.SEND_INVITE)).one()
    assert path.rsplit("/", 1)[1] not in str(job.payload)  # the link travels encrypted

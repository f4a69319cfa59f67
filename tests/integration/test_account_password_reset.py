"""“Forgot your password?”: a single-use link by email (through the outbox and a real SMTP
server), valid for an hour, stored as a hash; unknown addresses get the same answer after
the same work; throttled per address and per client; a new password ends every session."""
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from portal import crypto
from portal.extensions import db
from portal.jobs.runner import drain, run_due_jobs
from portal.models import ActivityEvent, Job, PasswordReset, utcnow
from portal.models.jobs import JOB_DONE, JOB_QUEUED
from portal.services import accounts, staff
from tests.plugins.accounts import PASSWORD, Auth, csrf_from

NEW_PASSWORD = "a completely new passphrase"


@pytest.fixture
def alice(app, make_household):
    user, account = make_household("alice@example.com", "Elm Street")
    return user, account


def _ask(client, email):
    page = client.get("/password/forgot")
    return client.post("/password/forgot", data={"email": email, "csrf_token": csrf_from(page.get_data(as_text=True))})


def _link_in(smtp_server, to="alice@example.com") -> str:
    [message] = smtp_server.to(to)
    match = re.search(r"https?://[^/\s]+(/password/reset/[A-Za-z0-9_-]+)", smtp_server.text_of(message))
    assert match, smtp_server.text_of(message)
    return match.group(1)


def _set(client, path, password=NEW_PASSWORD):
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return client.post(path, data={"password": password, "csrf_token": csrf_from(page.get_data(as_text=True))})


def _logged_in(client) -> bool:
    return client.get("/settings").status_code == 200


def test_the_emailed_link_sets_a_new_password_once_and_ends_every_session(app, alice, smtp_server):
    phone, laptop = Auth(app.test_client()), Auth(app.test_client())
    assert phone.login().status_code == 302 and laptop.login().status_code == 302
    # The laptop asks while logged in: it is logged out too.
    response = _ask(laptop.client, "alice@example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/password/forgot/sent"
    assert smtp_server.messages == []  # nothing sent in the request: the outbox does it
    drain(app)
    path = _link_in(smtp_server)
    token = path.rsplit("/", 1)[1]

    # Only the hash of the token is stored; the job no longer holds the (encrypted) link.
    db.session.expire_all()
    [reset] = db.session.scalars(sa.select(PasswordReset).where(PasswordReset.user_id == alice[0].id)).all()
    assert reset.token_hash == crypto.sha256_hex(token)
    [job] = db.session.scalars(sa.select(Job).where(Job.kind == "mail.password_reset")).all()
    assert job.state == JOB_DONE and "link" not in job.payload

    response = _set(laptop.client, path)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "Log in with your new password" in laptop.client.get("/login").get_data(as_text=True)
    assert not _logged_in(phone.client) and not _logged_in(laptop.client)
    assert phone.login(password=PASSWORD).status_code == 200  # the old password is refused
    assert phone.login(password=NEW_PASSWORD).status_code == 302

    again = Auth(app.test_client()).client.get(path)
    assert again.status_code == 410
    assert "expired or was already used" in again.get_data(as_text=True)
    [event_row] = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == "member.password_reset"))
    assert event_row.account_id == alice[1].id and event_row.actor_user_id == alice[0].id
    assert "all of their sessions were logged out" in event_row.summary


def test_the_link_expires_after_one_hour(app, alice, smtp_server, time_machine):
    start = utcnow()
    time_machine.move_to(start, tick=False)
    client = app.test_client()
    _ask(client, "alice@example.com")
    drain(app)
    path = _link_in(smtp_server)
    time_machine.move_to(start + timedelta(minutes=59), tick=False)
    assert client.get(path).status_code == 200
    time_machine.move_to(start + timedelta(minutes=60, seconds=1), tick=False)
    assert client.get(path).status_code == 410
    page = client.get("/password/forgot")  # a CSRF token of this browser (the link's page refuses)
    late = client.post(path, data={"password": NEW_PASSWORD, "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert late.status_code == 410
    assert accounts.authenticate("alice@example.com", PASSWORD) is not None


def _statements_of(app, call):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement.split()[0])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = call()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return response, statements


def _without_csrf(html: str) -> str:
    """Pages differ only by each browser's own CSRF token."""
    return html.replace(csrf_from(html), "<csrf>")


def test_an_unknown_address_gets_the_same_answer_after_the_same_work(app, alice, smtp_server):
    known_client, unknown_client = app.test_client(), app.test_client()
    # Warm both clients up the same way (CSRF token in the session).
    known_page = known_client.get("/password/forgot").get_data(as_text=True)
    unknown_page = unknown_client.get("/password/forgot").get_data(as_text=True)
    known, known_sql = _statements_of(app, lambda: known_client.post(
        "/password/forgot", data={"email": "alice@example.com", "csrf_token": csrf_from(known_page)}))
    unknown, unknown_sql = _statements_of(app, lambda: unknown_client.post(
        "/password/forgot", data={"email": "nobody@example.com", "csrf_token": csrf_from(unknown_page)}))
    assert (known.status_code, known.headers["Location"], known.get_data()) == (
        unknown.status_code, unknown.headers["Location"], unknown.get_data())
    assert known_sql == unknown_sql  # the same statements, in the same order
    sent_known = known_client.get("/password/forgot/sent")
    sent_unknown = unknown_client.get("/password/forgot/sent")
    assert sent_known.status_code == sent_unknown.status_code == 200
    assert "If an account exists for that address, we sent a link" in sent_known.get_data(as_text=True)
    assert _without_csrf(sent_known.get_data(as_text=True)) == _without_csrf(sent_unknown.get_data(as_text=True))
    # Both queued a job; only the real account's job sends an email.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(
        Job.kind == "mail.password_reset", Job.state == JOB_QUEUED)) == 2
    drain(app)
    assert [m["To"] for m in smtp_server.messages] == ["alice@example.com"]


def test_throttled_per_address_typed_and_per_client(app, alice, smtp_server):
    app.config.update(PASSWORD_RESETS_PER_ACCOUNT=3, PASSWORD_RESETS_PER_ADDRESS=7)
    client = app.test_client()
    for email in ("alice@example.com", "nobody@example.com"):
        for _ in range(3):
            assert _ask(client, email).status_code == 302
        refused = _ask(client, email)  # the address's limit: the same for both
        assert refused.status_code == 429
        assert "Too many reset requests" in refused.get_data(as_text=True)
    assert _ask(client, "carol@example.com").status_code == 302  # the client's 7th
    refused = _ask(client, "dave@example.com")  # the client's own limit, whatever the address
    assert refused.status_code == 429
    assert "Too many reset requests" in refused.get_data(as_text=True)
    drain(app)
    # Only the newest link of an account works: the two it replaced were never sent.
    assert len(smtp_server.to("alice@example.com")) == 1


def test_a_weak_password_is_refused_on_the_field_and_the_link_still_works(app, alice, smtp_server):
    client = app.test_client()
    _ask(client, "alice@example.com")
    drain(app)
    path = _link_in(smtp_server)
    refused = _set(client, path, password="password123")
    assert refused.status_code == 200
    assert "one of the most common ones" in refused.get_data(as_text=True)
    assert _set(client, path).status_code == 302


def test_a_mail_server_that_refuses_for_a_while_gets_the_email_later(app, alice, smtp_server, time_machine):
    smtp_server.refuse = True
    _ask(app.test_client(), "alice@example.com")
    run_due_jobs(app)
    db.session.expire_all()
    [job] = db.session.scalars(sa.select(Job).where(Job.kind == "mail.password_reset")).all()
    assert job.state == JOB_QUEUED and job.attempts == 1 and smtp_server.refused == 1
    assert "link" in job.payload  # kept (encrypted) for the next attempt
    smtp_server.refuse = False
    time_machine.move_to(utcnow() + timedelta(minutes=1), tick=False)
    drain(app)
    assert _link_in(smtp_server)


def test_staff_addresses_get_the_same_answer_and_no_email(app, smtp_server):
    staff.create_staff("sam@example.com")
    response = _ask(app.test_client(), "sam@example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/password/forgot/sent"
    drain(app)
    assert smtp_server.messages == []


def test_a_malformed_address_is_refused_on_the_field(app):
    response = _ask(app.test_client(), "not an address")
    assert response.status_code == 200
    assert "Enter a valid email address" in response.get_data(as_text=True)


def test_the_login_page_links_to_the_forgot_password_page(client):
    assert 'href="/password/forgot"' in client.get("/login").get_data(as_text=True)

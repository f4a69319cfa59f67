"""The household link under the faults of real networks and platforms: StreamIoT down,
answers lost after the work was done, nonsense answers, a worker killed mid-job. Each
test checks the final state: linked, with exactly one portal thing."""
import re
import socket
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from requests.adapters import BaseAdapter
from requests.models import Response

from portal.extensions import db
from portal.jobs.context import account_secret, set_streamiot
from portal.jobs.handlers.accounts import portal_thing_name
from portal.jobs.runner import drain, run_due_jobs
from portal.models import Job, utcnow
from portal.streamiot.client import StreamIoT
from portal.streamiot.deployment import client_from_config
from portal.streamiot.emulator import EMBEDDED_READER_URL, EMBEDDED_URL, EmbeddedAdapter, get_emulator, make_emulator
from portal.streamiot.emulator.server import serve_in_thread


class WorkerKilled(BaseException):
    """Stands for the process dying: nothing in the worker may catch it."""


class Faults(BaseAdapter):
    """The embedded emulator behind a transport that fails on request, the way networks
    and proxies do: `plan(method, path_regex, fault, times=1)`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.planned = []
        self.sent = []

    def plan(self, method, path, fault, times=1):
        self.planned.append([method, re.compile(path), fault, times])

    def send(self, request, **kwargs):
        path = request.path_url.split("?")[0]
        self.sent.append(f"{request.method} {path}")
        for entry in self.planned:
            method, pattern, fault, times = entry
            if times and method == request.method and pattern.fullmatch(path):
                entry[3] -= 1
                return getattr(self, fault)(request, kwargs)
        return self.inner.send(request, **kwargs)

    def down(self, request, kwargs):
        raise requests.exceptions.ConnectionError("connection refused")

    def lost(self, request, kwargs):
        """StreamIoT did the work; its answer never arrived."""
        self.inner.send(request, **kwargs)
        raise requests.exceptions.ReadTimeout("read timed out")

    def html(self, request, kwargs):
        """A proxy's error page with a 200."""
        response = Response()
        response.status_code = 200
        response.headers["Content-Type"] = "text/html"
        response._content = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
        response.url, response.request = request.url, request
        return response

    def no_location(self, request, kwargs):
        """A 201 whose Location header was lost on the way (the object exists)."""
        response = self.inner.send(request, **kwargs)
        del response.headers["Location"]
        return response

    def killed(self, request, kwargs):
        """The worker dies right after StreamIoT did the work."""
        self.inner.send(request, **kwargs)
        raise WorkerKilled()

    def close(self):
        pass


@pytest.fixture
def faults(app):
    emulator = get_emulator(
        app.config["STREAMIOT_EMULATOR_DB"], token_ttl=app.config["STREAMIOT_EMULATOR_TOKEN_TTL"]
    )
    adapter = Faults(EmbeddedAdapter(emulator))
    session = requests.Session()
    session.mount(f"{EMBEDDED_URL}/", adapter)
    set_streamiot(app, StreamIoT(EMBEDDED_URL, EMBEDDED_READER_URL, session=session))
    return adapter


def portal_things(app, account):
    user = client_from_config(app.config).as_user(
        account.streamiot_email, account_secret(account, "streamiot_password_enc")
    )
    return user.find_things(portal_thing_name(account.id))


def link_job(account) -> Job:
    return db.session.scalars(sa.select(Job).where(Job.account_id == account.id)).one()


def assert_linked_once(app, account):
    assert account.link_state == "connected"
    assert account.link_error is None and account.link_retry_at is None
    [thing] = portal_things(app, account)
    assert thing["id"] == account.portal_thing_id
    assert account_secret(account, "portal_thing_key_enc") == thing["key"]
    assert link_job(account).state == "done"


def assert_retrying_not_done(account, reason):
    job = link_job(account)
    assert job.state == "queued" and job.last_error == reason
    assert account.link_state == "problem"
    assert account.link_error == reason
    assert account.link_retry_at is not None
    assert account.portal_thing_key_enc is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamiot_down_while_household_is_created_then_linked_after_recovery(app, make_household, tmp_path):
    # A real StreamIoT URL on a port where nothing listens yet.
    port = _closed_port()
    app.config.update(
        STREAMIOT_URL=f"http://127.0.0.1:{port}", STREAMIOT_READER_URL=f"http://127.0.0.1:{port}/reader"
    )
    _, account = make_household()
    assert account.link_state == "connecting"

    assert run_due_jobs(app) == 1
    assert_retrying_not_done(account, "StreamIoT could not be reached (POST /users)")
    assert link_job(account).attempts == 1

    # StreamIoT comes back on that address.
    served = serve_in_thread(make_emulator(tmp_path / "back.sqlite3"), port=port)
    try:
        drain(app)
        assert account.link_state == "connected"
        assert link_job(account).attempts == 2
        user = StreamIoT(served.url, served.reader_url).as_user(
            account.streamiot_email, account_secret(account, "streamiot_password_enc")
        )
        assert len(user.find_things(portal_thing_name(account.id))) == 1
    finally:
        served.stop()


def test_streamiot_down_mid_link_resumes_where_it_stopped(app, make_household, faults):
    _, account = make_household()
    faults.plan("POST", "/things", "down", times=3)
    run_due_jobs(app)
    assert_retrying_not_done(account, "StreamIoT could not be reached (POST /things)")
    drain(app)
    assert_linked_once(app, account)
    # The user was created once: retries found it done and went on.
    assert faults.sent.count("POST /users") == 1


def test_thing_created_but_answer_lost_leaves_exactly_one_thing(app, make_household, faults):
    _, account = make_household()
    faults.plan("POST", "/things", "lost")
    run_due_jobs(app)
    assert_retrying_not_done(account, "StreamIoT did not answer in time (POST /things)")
    assert len(portal_things(app, account)) == 1  # it does exist already

    drain(app)
    assert_linked_once(app, account)
    assert faults.sent.count("POST /things") == 1  # the retry found it by name


def test_user_created_but_answer_lost_is_fine_on_retry(app, make_household, faults):
    _, account = make_household()
    faults.plan("POST", "/users", "lost")
    drain(app)
    assert_linked_once(app, account)
    assert faults.sent.count("POST /users") == 2  # the second got 409: already there


def test_html_page_with_200_is_not_taken_for_the_thing(app, make_household, faults):
    _, account = make_household()
    faults.plan("GET", "/things/[^/]+", "html")
    run_due_jobs(app)
    reason = f"StreamIoT answered GET /things/{account.portal_thing_id} with 200 but no JSON object"
    assert_retrying_not_done(account, reason)
    drain(app)
    assert_linked_once(app, account)


def test_html_page_instead_of_a_login_token_is_retried(app, make_household, faults):
    _, account = make_household()
    faults.plan("POST", "/tokens", "html")
    run_due_jobs(app)
    assert_retrying_not_done(account, "StreamIoT answered POST /tokens with 200 but no JSON object")
    assert account.streamiot_token_enc is None
    drain(app)
    assert_linked_once(app, account)


def test_created_without_location_is_retried_and_never_duplicated(app, make_household, faults):
    _, account = make_household()
    faults.plan("POST", "/things", "no_location")
    run_due_jobs(app)
    assert_retrying_not_done(account, "StreamIoT answered POST /things with 201 but no usable Location")
    assert account.portal_thing_id is None
    drain(app)
    assert_linked_once(app, account)


def test_worker_killed_mid_link_is_finished_by_another(app, make_household, faults):
    _, account = make_household()
    faults.plan("POST", "/things", "killed")
    with pytest.raises(WorkerKilled):
        run_due_jobs(app, worker_id="worker-that-dies")

    job = link_job(account)
    assert (job.state, job.locked_by) == ("running", "worker-that-dies")
    assert drain(app) == 0  # its lease still holds

    after_lease = utcnow() + timedelta(seconds=app.config["JOB_LEASE_SECONDS"] + 1)
    assert run_due_jobs(app, worker_id="survivor", now=after_lease) == 1
    assert_linked_once(app, account)
    assert link_job(account).attempts == 2


def test_link_waits_without_burning_attempts_while_streamiot_never_comes_back(app, make_household, faults):
    """Out of reach is the platform's matter (portal/jobs/platform.py): the link keeps
    waiting with the reason, only the attempt that found StreamIoT down counts, and
    it never gives up for that."""
    app.config["JOB_MAX_ATTEMPTS"] = 3
    _, account = make_household()
    faults.plan("POST", "/users", "down", times=99)
    drain(app, max_rounds=20)
    job = link_job(account)
    assert (job.state, job.attempts) == ("queued", 1)
    assert faults.sent.count("POST /users") == 20  # one probe per round, no more
    assert_retrying_not_done(account, "StreamIoT could not be reached (POST /users)")
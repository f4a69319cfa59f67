"""The portal as `make serve` runs it (scripts/serve.py: migrations, gunicorn with
gunicorn.conf.py, a job worker process), in production mode with production argon2 costs,
under 10 s of 8 concurrent connections mixing the login page, logins with the right
password, the dashboard, a box page's live fragment and adding PINs: nothing answers 5xx,
no connection fails or times out, /healthz sees the worker, and SIGTERM stops every process.
On SQLite, and on PostgreSQL when TEST_DATABASE_URL is set (a database of its own, migrated
from empty as production is)."""
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import requests
import sqlalchemy as sa

from config import TestConfig
from portal import create_app
from portal.crypto import generate_data_key
from portal.extensions import db
from portal.models import ROLE_MEMBER, Membership
from portal.services import accounts
from tests.conftest import PG_URL, skip_or_fail
from tests.plugins.accounts import PASSWORD, build_world, csrf_from
from tests.processes import server_env, start_server, stop, wait_for_output

PYTHON = Path(sys.executable)
CONNECTIONS = 8
LOAD_SECONDS = 10.0
START_TIMEOUT = 20.0  # migrations from empty, then gunicorn and the worker booting
REQUEST_TIMEOUT = 20.0  # longer than any answer may take; gunicorn's own timeout is 30 s
# What each kind of request answers when all is well.
EXPECTED = {"login page": {200}, "login": {302}, "dashboard": {200}, "live fragment": {200}, "add PIN": {303}}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'portal.sqlite3'}"
        return
    if not PG_URL:
        skip_or_fail("PostgreSQL tests need TEST_DATABASE_URL")
    admin = sa.engine.make_url(PG_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"iotlock_serve_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Served:
    """The running `make serve` of one test: its base URL, processes, logs and seeded box."""

    def __init__(self, base: str, proc: subprocess.Popen, children: list[int], out: Path, mailbox_id: str):
        self.base, self.proc, self.children, self.out, self.mailbox_id = base, proc, children, out, mailbox_id


@pytest.fixture
def served(tmp_path, database_url):
    data_key = generate_data_key()
    env = server_env(
        tmp_path,
        IOTLOCK_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        IOTLOCK_DATA_KEY=data_key,
        # Plain http on 127.0.0.1: the cookie must travel without https (honoured, with a warning).
        SESSION_COOKIE_SECURE="off",
        DATABASE_URL=database_url,
        BIND="127.0.0.1:0",
        JOB_WORKERS="1",
        STOP_GRACE_SECONDS="8",
    )
    for name in ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM", "WEB_CONCURRENCY"):
        env.pop(name, None)  # production's own values
    proc, out, err = start_server([str(PYTHON), "scripts/serve.py"], tmp_path, env)
    try:
        port = wait_for_output(err, r"Listening at: http://127\.0\.0\.1:(\d+)", proc, START_TIMEOUT).group(1)
        pids = wait_for_output(err, r"serve: gunicorn \(pid (\d+)\) and 1 job worker\(s\) \(pids ([\d, ]+)\)", proc, 5.0)
        children = [int(pids.group(1)), *(int(p) for p in pids.group(2).split(","))]
        mailbox_id = _seed(database_url, data_key, tmp_path / "seed")
        yield Served(f"http://127.0.0.1:{port}", proc, children, out, mailbox_id)
    finally:
        stop(proc)


def _seed(database_url: str, data_key: str, instance) -> str:
    """Households A and B with a gateway and a box each, and a member of A per connection
    (each logs in as its own: a login claims a throttle slot of its account before hashing,
    so 8 logins of one account at once would be refused by design); written by an app of the
    tests' configuration into the served database (its cheap argon2 hashes are re-made with
    the production costs at the first login, as stored hashes of older parameters are).
    Returns household A's box id."""
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url, IOTLOCK_DATA_KEY=data_key,
                     SECRET_KEY="seed", INSTANCE_DIR=instance, RAISE_ON_LAZY_LOAD=False)
    with app.app_context():
        world = build_world()
        for n in range(CONNECTIONS):
            user = accounts.register_user(_member(n), PASSWORD)
            db.session.add(Membership(account_id=world.a["account"].id, user_id=user.id, role=ROLE_MEMBER))
        db.session.commit()
        mailbox_id = str(world.a["mailbox"].id)
        db.session.remove()
        db.engine.dispose()
    return mailbox_id


def _member(n: int) -> str:
    return f"load-{n}@example.com"


def _login(session: requests.Session, base: str, email: str, timeout: float) -> requests.Response:
    token = csrf_from(session.get(f"{base}/login", timeout=timeout).text)
    return session.post(f"{base}/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                        allow_redirects=False, timeout=timeout)


class Load:
    """8 connections, each its own thread and keep-alive session, for LOAD_SECONDS."""

    def __init__(self, base: str, mailbox_id: str):
        self.base, self.box = base, f"{base}/mailboxes/{mailbox_id}"
        self.statuses: Counter = Counter()  # (kind, status)
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def request(self, kind: str, call, *args, **kwargs) -> None:
        try:
            answer = call(*args, timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        with self.lock:
            self.statuses[(kind, answer.status_code)] += 1

    def connection(self, n: int, deadline: float) -> None:
        rng = random.Random(n)
        member = requests.Session()
        self.request("login", _login, member, self.base, _member(n))
        token = csrf_from(member.get(self.box, timeout=REQUEST_TIMEOUT).text)
        kinds = list(EXPECTED)
        turn = n
        while time.monotonic() < deadline:
            kind = kinds[turn % len(kinds)]
            turn += 1
            if kind == "login page":
                self.request(kind, requests.get, f"{self.base}/login")
            elif kind == "login":
                self.request(kind, _login, requests.Session(), self.base, _member(n))
            elif kind == "dashboard":
                self.request(kind, member.get, f"{self.base}/gateways/")
            elif kind == "live fragment":
                self.request(kind, member.get, self.box, headers={"HX-Request": "true", "X-IoTLock-Poll": "1"})
            else:
                digits = str(rng.randrange(10_000_000, 99_999_999))
                self.request(kind, member.post, f"{self.box}/pins", allow_redirects=False, data={
                    "label": f"Guest {digits}", "digits": digits, "kind": "always", "csrf_token": token})

    def run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        threads = [threading.Thread(target=self.guarded, args=(n, deadline)) for n in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LOAD_SECONDS + 3 * REQUEST_TIMEOUT)

    def guarded(self, n: int, deadline: float) -> None:
        try:
            self.connection(n, deadline)
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            with self.lock:
                self.failures.append(f"connection {n}: {type(exc).__name__}: {exc}")

    def summary(self) -> str:
        rows = sorted(self.statuses.items())
        return ", ".join(f"{kind} {status}: {count}" for (kind, status), count in rows)


def test_production_serving_answers_a_mixed_load_without_5xx(served):
    health = requests.get(f"{served.base}/healthz", timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + 10
    while health.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker's first heartbeat
        health = requests.get(f"{served.base}/healthz", timeout=REQUEST_TIMEOUT)
    assert health.status_code == 200 and health.json()["worker"] == "ok", health.text

    load = Load(served.base, served.mailbox_id)
    load.run()
    print(f"\nserving load, {CONNECTIONS} connections for {LOAD_SECONDS:.0f} s: {load.summary()}")

    server_errors = {key: n for key, n in load.statuses.items() if key[1] >= 500}
    assert not server_errors, f"5xx answers: {server_errors}; all: {load.summary()}"
    assert not load.failures, f"{len(load.failures)} failed requests, first: {load.failures[:3]}"
    for kind, expected in EXPECTED.items():
        assert any(load.statuses[(kind, status)] for status in expected), f"no {kind} answered {expected}: {load.summary()}"
    unexpected = {key: n for key, n in load.statuses.items() if key[1] not in EXPECTED[key[0]] | {429}}
    assert not unexpected, f"unexpected answers: {unexpected}"

    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=15)
    assert served.proc.returncode == 0
    assert not [pid for pid in served.children if _alive(pid)], "a process outlived make serve's SIGTERM"
    access = served.out.read_text(errors="replace")
    assert re.search(r'"POST /login HTTP/1\.1" 302 .* rid=[0-9a-f]{32} ms=\d+', access), access[-2000:]

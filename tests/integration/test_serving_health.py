"""/healthz (database and worker heartbeat, 200 or 503 naming what failed) and request ids
(X-Request-Id in, out, and on the log records of the request)."""
import logging
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from config import TestConfig
from portal import create_app
from portal.crypto import generate_data_key
from portal.extensions import db
from portal.jobs.worker import Worker
from portal.logredact import RequestIdFilter
from portal.models import utcnow
from portal.services import worker_health


def _health(client):
    response = client.get("/healthz")
    return response.status_code, response.get_json(), response


def test_healthz_is_503_without_any_worker(client):
    status, body, response = _health(client)
    assert status == 503
    assert body["status"] == "fail" and body["database"] == "ok" and body["worker"] == "none"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_healthz_is_200_while_a_worker_beats_and_503_once_its_beat_is_stale(app, client, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    worker_health.beat("host:1:abcd", starting=True)
    status, body, response = _health(client)
    assert status == 200
    assert body == {"status": "ok", "database": "ok", "worker": "ok", "workers": 1, "worker_last_beat_seconds": 0.0}
    assert "Set-Cookie" not in response.headers

    time_machine.move_to(utcnow() + timedelta(seconds=app.config["WORKER_STALE_SECONDS"] + 1), tick=False)
    status, body, _ = _health(client)
    assert status == 503
    assert body["worker"] == "stale" and body["database"] == "ok" and body["workers"] == 0
    assert body["worker_last_beat_seconds"] == app.config["WORKER_STALE_SECONDS"] + 1


def test_a_running_worker_beats_and_forgets_its_beat_when_it_stops(app, client):
    stop = threading.Event()
    worker = Worker(app)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if _health(client)[0] == 200:
                break
            stop.wait(0.05)
        assert _health(client)[1]["workers"] == 1
    finally:
        stop.set()
        thread.join(15)
    status, body, _ = _health(client)
    assert status == 503 and body["worker"] == "none"


def test_healthz_names_the_heartbeat_table_when_only_it_fails(app, client):
    worker_health.beat("host:1:abcd")
    db.session.execute(sa.text("DROP TABLE worker_heartbeats"))
    db.session.commit()
    try:
        status, body, _ = _health(client)
    finally:
        db.create_all()
    assert status == 503
    assert body["database"] == "ok" and body["worker"] == "unknown"
    assert "migrations" in body["detail"]


def test_healthz_says_the_database_is_unreachable(tmp_path):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'no-such-folder' / 'x.sqlite3'}",
                     SECRET_KEY="k", IOTLOCK_DATA_KEY=generate_data_key(), INSTANCE_DIR=tmp_path)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "fail", "database": "unreachable", "worker": "unknown"}


@pytest.mark.parametrize("incoming", ["b7c2f0e4-55aa-4c1e-9f00-0e5b6a7c8d9e", "Root=1-5e1b4151-5ac6c58f;Parent=53995c3f"])
def test_a_sane_incoming_request_id_is_echoed(client, incoming):
    response = client.get("/login", headers={"X-Request-Id": incoming})
    assert response.headers["X-Request-Id"] == incoming


@pytest.mark.parametrize("incoming", ["", "has spaces in it", 'quote"d', "x" * 129, "-leading-dash", "tab\there"])
def test_an_insane_incoming_request_id_is_replaced_by_a_fresh_one(client, incoming):
    response = client.get("/healthz", headers={"X-Request-Id": incoming})
    answered = response.headers["X-Request-Id"]
    assert answered != incoming and len(answered) == 32 and int(answered, 16) >= 0


def test_every_answer_has_its_own_request_id_errors_included(client):
    ids = {client.get(path).headers["X-Request-Id"] for path in ("/login", "/login", "/no-such-page", "/gateways/")}
    assert len(ids) == 4


def test_log_records_written_during_a_request_carry_its_id(app):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("portal.test_serving")
    logger.addHandler(handler)
    try:
        with app.test_request_context("/", headers={"X-Request-Id": "req-42"}):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    assert [r.request_id for r in records] == ["req-42", "-"]

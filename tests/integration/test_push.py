"""Web Push alerts (issue 13): the test plays the browser's push service. A member turns on
alerts with a browser's own key pair; the alert's job posts to the push service, which
checks the VAPID JWT and decrypts the body (RFC 8291) to the alert. 404/410 removes the
browser; 429/5xx and no answer retry; each browser gets an alert once; a user only ever
touches their own browsers."""
import base64
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_ece
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from config import TestConfig
from portal import create_app
from portal.extensions import db
from portal.jobs.outbox import enqueue
from portal.jobs.registry import streamiot_kinds
from portal.jobs.runner import drain
from portal.models import CHANNELS, Alert, Job, Notification, PushSubscription, utcnow
from portal.models.jobs import JOB_DONE, JOB_FAILED, JOB_QUEUED
from portal.services.notifications import NotificationState
from tests.plugins.accounts import PASSWORD, Auth, csrf_from

PUSH = CHANNELS[2]
SUMMARY = "Front mailbox opened with the PIN “Postman”"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def app_overrides():
    # The push service of these tests listens on 127.0.0.1: the test-only allow-list lets the
    # portal reach it (every other private address stays refused).
    return {"PUSH_ALLOW_PRIVATE_FOR_TESTS": ("127.0.0.1/32",)}


def _resolving(monkeypatch, names: dict[str, str]) -> list[str]:
    """getaddrinfo answering each of `names` with one IPv4 address; returns the names asked."""
    real, asked = socket.getaddrinfo, []

    def fake(host, port, *args, **kwargs):
        if host in names:
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


# --- the push service and the browser ------------------------------------------------------

class PushService:
    """A push service on 127.0.0.1: records each request, answers with the next status of
    `answers` (201 when none is left)."""

    def __init__(self):
        self.received: list[dict] = []
        self.answers: list[int | tuple[int, dict]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                service.received.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                answer = service.answers.pop(0) if service.answers else 201
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """A browser's subscription: its own P-256 key pair and auth secret, at an endpoint."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = os.urandom(16)

    def subscription(self) -> dict:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(point), "auth": b64url(self.auth_secret)}}

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth_secret,
                                           version="aes128gcm"))


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def browser(push_service):
    return Browser(f"{push_service.origin}/push/browser-one")


# --- the household, its alert and the member's notification -----------------------------------

def _client(app, user) -> Auth:
    auth = Auth(app.test_client())
    assert auth.login(user.email, PASSWORD).status_code == 302
    return auth


def _turn_on(auth: Auth, browser: Browser, user_agent="Mozilla/5.0 (Android 14) Firefox/130.0"):
    token = csrf_from(auth.client.get("/push/").get_data(as_text=True))
    return auth.client.post("/push/subscribe", json=browser.subscription(),
                            headers={"X-CSRFToken": token, "User-Agent": user_agent})


def _alert_for(user, world) -> Notification:
    """An "opened" alert of household A's box and the push notification of `user`, with its
    job, as the alerts fan-out leaves them."""
    alert = Alert(account_id=world.a["account"].id, kind="opened", gateway_id=world.a["gateway"].id,
                  mailbox_id=world.a["mailbox"].id, summary=SUMMARY, occurred_at=utcnow().replace(microsecond=0))
    db.session.add(alert)
    db.session.flush()
    notification = Notification(account_id=alert.account_id, alert_id=alert.id, user_id=user.id, channel=PUSH,
                                state="queued")
    db.session.add(notification)
    db.session.flush()
    _job_for(notification)
    db.session.commit()
    return notification


def _alert_to_one_browser(app, world, push_service, browser, *answers):
    """Household A's member turns on alerts on `browser`; an alert's job runs, the push
    service answering `answers` in turn. Returns (member, notification)."""
    member = world.a["member"]
    assert _turn_on(_client(app, member), browser).status_code == 201
    push_service.answers = list(answers)
    notification = _alert_for(member, world)
    drain(app)
    return member, notification


def _job_for(notification: Notification) -> Job:
    return enqueue("alert.push", {"notification_id": str(notification.id)}, account_id=notification.account_id,
                   target=f"notification:{notification.id}")


def _state(notification: Notification) -> str:
    db.session.expire_all()
    return db.session.get(Notification, notification.id).state


def _subscriptions(user) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(PushSubscription.endpoint).where(PushSubscription.user_id == user.id)))


def _jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Job).where(Job.kind == "alert.push")))


def _vapid_claims(authorization: str) -> tuple[dict, str]:
    """The VAPID JWT's claims, once its ES256 signature verifies with the key it names (k);
    and that key."""
    match = re.fullmatch(r"vapid t=([\w-]+\.[\w-]+\.[\w-]+),\s*k=([\w-]+)", authorization)
    assert match, authorization
    token, key = match.groups()
    signed, signature = token.rsplit(".", 1)
    raw = unb64url(signature)
    assert len(raw) == 64
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    try:
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                      signed.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        pytest.fail("the VAPID JWT's signature does not verify with its key")
    header = json.loads(unb64url(signed.split(".")[0]))
    assert header == {"typ": "JWT", "alg": "ES256"}
    return json.loads(unb64url(signed.split(".")[1])), key


# --- tests -----------------------------------------------------------------------------------

def test_the_push_service_gets_the_alert_signed_with_vapid_and_encrypted_for_the_browser(app, world, push_service,
                                                                                          browser):
    member = world.a["member"]
    auth = _client(app, member)
    answer = _turn_on(auth, browser)
    assert answer.status_code == 201
    assert answer.get_json()["label"] == "Firefox on Android"
    page = auth.client.get("/push/").get_data(as_text=True)
    server_key = re.search(r'data-server-key="([\w-]+)"', page).group(1)
    assert "Firefox on Android" in page

    notification = _alert_for(member, world)
    drain(app)

    [request] = push_service.received
    assert request["path"] == "/push/browser-one"
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["content-encoding"] == "aes128gcm"
    assert int(headers["ttl"]) == app.config["PUSH_TTL_SECONDS"]
    claims, key = _vapid_claims(headers["authorization"])
    assert key == server_key
    assert claims["aud"] == push_service.origin
    assert claims["sub"] == app.config["VAPID_SUBJECT"]
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600

    alert = db.session.get(Alert, notification.alert_id)
    assert browser.decrypt(request["body"]) == {
        "id": str(alert.id),
        "kind": "opened",
        "summary": SUMMARY,
        "household": "Household A",
        "box": "Front mailbox",
        "occurred_at": alert.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "url": f"http://127.0.0.1:{app.config['PORT']}/mailboxes/{world.a['mailbox'].id}",
    }
    assert "482915" not in browser.decrypt(request["body"]).__repr__()  # the box's PIN digits
    assert _state(notification) == NotificationState.SENT
    assert [job.state for job in _jobs()] == [JOB_DONE]


def test_an_alert_is_sent_once_even_when_its_job_runs_again(app, world, push_service, browser):
    _member, notification = _alert_to_one_browser(app, world, push_service, browser)
    _job_for(notification)
    db.session.commit()
    drain(app)
    assert len(push_service.received) == 1
    assert _state(notification) == NotificationState.SENT


def test_a_gone_subscription_is_removed_and_the_notification_skipped(app, world, push_service, browser):
    member, notification = _alert_to_one_browser(app, world, push_service, browser, 410)
    assert len(push_service.received) == 1
    assert _subscriptions(member) == []
    assert _state(notification) == NotificationState.SKIPPED
    assert [job.state for job in _jobs()] == [JOB_DONE]


def test_404_removes_only_that_browser_and_the_others_get_the_alert(app, world, push_service, browser):
    member = world.a["member"]
    auth = _client(app, member)
    other = Browser(f"{push_service.origin}/push/browser-two")
    assert _turn_on(auth, browser).status_code == 201
    assert _turn_on(auth, other).status_code == 201
    push_service.answers = [404, 201]
    notification = _alert_for(member, world)
    drain(app)
    assert _subscriptions(member) == [other.endpoint]
    assert _state(notification) == NotificationState.SENT


@pytest.mark.parametrize("failure", [500, 503, (429, {"Retry-After": "0"})], ids=["500", "503", "429"])
def test_a_push_service_failing_is_retried_later_and_each_browser_gets_the_alert_once(app, world, push_service,
                                                                                       browser, failure):
    member = world.a["member"]
    auth = _client(app, member)
    other = Browser(f"{push_service.origin}/push/browser-two")
    assert _turn_on(auth, browser).status_code == 201
    assert _turn_on(auth, other).status_code == 201
    # The first browser takes it; the second's push service fails, then takes it.
    push_service.answers = [201, failure]
    notification = _alert_for(member, world)

    drain(app, max_rounds=1)
    [job] = _jobs()
    assert job.state == JOB_QUEUED and "Push not delivered yet" in job.last_error
    assert _state(notification) == NotificationState.QUEUED
    drain(app)

    assert [r["path"] for r in push_service.received] == ["/push/browser-one", "/push/browser-two",
                                                          "/push/browser-two"]
    assert _state(notification) == NotificationState.SENT
    assert [job.state for job in _jobs()] == [JOB_DONE]
    assert sorted(_subscriptions(member)) == sorted([browser.endpoint, other.endpoint])


def test_a_push_service_not_answering_is_retried_later(app, world, push_service):
    member = world.a["member"]
    # A port with nobody listening: the connection is refused.
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    assert _turn_on(_client(app, member), Browser(f"http://127.0.0.1:{port}/push/gone-quiet")).status_code == 201
    notification = _alert_for(member, world)
    drain(app, max_rounds=1)
    [job] = _jobs()
    assert job.state == JOB_QUEUED and "could not be reached" in job.last_error
    assert _state(notification) == NotificationState.QUEUED
    assert _subscriptions(member) == [f"http://127.0.0.1:{port}/push/gone-quiet"]


def test_another_refusal_skips_that_browser_and_fails_an_alert_no_browser_took(app, world, push_service, browser):
    member, notification = _alert_to_one_browser(app, world, push_service, browser, 400)
    assert len(push_service.received) == 1
    assert [job.state for job in _jobs()] == [JOB_FAILED]
    assert _state(notification) == NotificationState.FAILED
    assert _subscriptions(member) == [browser.endpoint]


def test_a_member_without_a_browser_is_skipped(app, world, push_service):
    notification = _alert_for(world.a["member"], world)
    drain(app)
    assert push_service.received == []
    assert _state(notification) == NotificationState.SKIPPED


def test_push_jobs_are_not_held_while_streamiot_is_down(app):
    assert "alert.push" not in streamiot_kinds()


def test_a_user_cannot_remove_or_unsubscribe_another_users_browser(app, world, push_service, browser):
    member = world.a["member"]
    assert _turn_on(_client(app, member), browser).status_code == 201
    [subscription_id] = db.session.scalars(sa.select(PushSubscription.id).where(PushSubscription.user_id == member.id))

    for intruder in (world.a["owner"], world.b["owner"]):
        auth = _client(app, intruder)
        assert auth.post("/push/remove", {"subscription_id": str(subscription_id)}, page="/push/").status_code == 404
        token = csrf_from(auth.client.get("/push/").get_data(as_text=True))
        answer = auth.client.post("/push/unsubscribe", json={"endpoint": browser.endpoint},
                                  headers={"X-CSRFToken": token})
        assert answer.status_code == 204
        assert browser.endpoint not in auth.client.get("/push/").get_data(as_text=True)
    assert _subscriptions(member) == [browser.endpoint]

    auth = _client(app, member)
    answer = auth.post("/push/remove", {"subscription_id": str(subscription_id)}, page="/push/")
    assert answer.status_code == 302
    assert _subscriptions(member) == []


def test_a_browser_turns_its_alerts_off(app, world, push_service, browser):
    member = world.a["member"]
    auth = _client(app, member)
    assert _turn_on(auth, browser).status_code == 201
    token = csrf_from(auth.client.get("/push/").get_data(as_text=True))
    assert auth.client.post("/push/unsubscribe", json={"endpoint": browser.endpoint},
                            headers={"X-CSRFToken": token}).status_code == 204
    assert _subscriptions(member) == []


def test_subscribing_needs_the_csrf_header(app, world, browser):
    auth = _client(app, world.a["member"])
    assert auth.client.post("/push/subscribe", json=browser.subscription()).status_code == 400
    assert _subscriptions(world.a["member"]) == []


@pytest.mark.parametrize("broken", [
    {"endpoint": "ftp://push.example.com/x"},
    {"keys": {"p256dh": b64url(b"\x04" + b"1" * 64), "auth": b64url(os.urandom(16))}},  # not a point on P-256
    {"keys": {"p256dh": "short", "auth": b64url(os.urandom(16))}},
    {"keys": "none"},
], ids=["scheme", "not-a-point", "short-key", "no-keys"])
def test_a_subscription_that_is_not_a_browsers_is_refused(app, world, browser, broken):
    auth = _client(app, world.a["member"])
    token = csrf_from(auth.client.get("/push/").get_data(as_text=True))
    subscription = {**browser.subscription(), **broken}
    answer = auth.client.post("/push/subscribe", json=subscription, headers={"X-CSRFToken": token})
    assert answer.status_code == 400
    assert answer.get_json()["error"]
    assert _subscriptions(world.a["member"]) == []


def test_the_vapid_key_is_generated_once_into_the_instance_folder(tmp_path):
    settings = dict(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}", INSTANCE_DIR=tmp_path,
                    SECRET_KEY="k", IOTLOCK_DATA_KEY="x" * 43 + "=")
    first = create_app(TestConfig, **settings)
    key_file = Path(tmp_path) / "vapid_private_key"
    assert key_file.read_text().strip() == first.config["VAPID_PRIVATE_KEY"]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(unb64url(first.config["VAPID_PRIVATE_KEY"])) == 32
    assert create_app(TestConfig, **settings).config["VAPID_PRIVATE_KEY"] == first.config["VAPID_PRIVATE_KEY"]


def test_the_service_worker_is_served_from_the_root(app):
    answer = app.test_client().get("/sw.js")
    assert answer.status_code == 200
    assert answer.mimetype == "text/javascript"
    assert "showNotification" in answer.get_data(as_text=True)


@pytest.mark.parametrize("endpoint", ["http://10.0.0.5/push/x", "http://169.254.169.254/latest/meta-data",
                                      "http://[::1]:8080/push/x", "http://127.0.0.2/push/x"])
def test_a_push_service_inside_a_private_network_is_refused(app, world, endpoint):
    answer = _turn_on(_client(app, world.a["member"]), Browser(endpoint))
    assert answer.status_code == 400
    assert "not one the portal can use" in answer.get_json()["error"]
    assert _subscriptions(world.a["member"]) == []


def test_the_push_goes_to_the_address_vetted_with_the_services_name_in_host_and_audience(
        app, world, push_service, monkeypatch):
    port = push_service.origin.rsplit(":", 1)[1]
    asked = _resolving(monkeypatch, {"push.example.com": "127.0.0.1"})
    browser = Browser(f"http://push.example.com:{port}/push/named")
    member, notification = _alert_to_one_browser(app, world, push_service, browser, 201)
    [request] = push_service.received
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["host"] == f"push.example.com:{port}"
    claims, _key = _vapid_claims(headers["authorization"])
    assert claims["aud"] == f"http://push.example.com:{port}"
    assert asked == ["push.example.com", "push.example.com"]  # once to subscribe, once to send
    assert _state(notification) == NotificationState.SENT


def test_a_name_that_points_inside_by_sending_time_is_not_pushed_to(app, world, push_service, monkeypatch):
    port = push_service.origin.rsplit(":", 1)[1]
    member = world.a["member"]
    _resolving(monkeypatch, {"push.example.com": "127.0.0.1"})
    assert _turn_on(_client(app, member), Browser(f"http://push.example.com:{port}/push/x")).status_code == 201
    _resolving(monkeypatch, {"push.example.com": "10.0.0.9"})  # DNS rebinding
    notification = _alert_for(member, world)
    drain(app)
    assert push_service.received == []
    assert _state(notification) == NotificationState.FAILED


def test_a_push_service_that_drips_its_answer_is_cut_off_and_retried(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "PUSH_TIMEOUT", 1.0)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 201 Created\r\nX-Slow: " + b"z" * 1000:
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    member = world.a["member"]
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}/push/slow"
    try:
        assert _turn_on(_client(app, member), Browser(endpoint)).status_code == 201
        notification = _alert_for(member, world)
        drain(app, max_rounds=1)
        [job] = _jobs()
        assert job.state == JOB_QUEUED and "did not answer within 1 s" in job.last_error
        assert _state(notification) == NotificationState.QUEUED
    finally:
        stop.set()
        listener.close()

"""Webhooks against a local receiver: messages signed as Standard Webhooks says (checked here
by an independent verifier), also across a secret rotation; retried with backoff until one
2xx, then never again; given up after 24 h and resent by hand; addresses inside private
networks refused on the field and again right before sending."""
import base64
import hashlib
import hmac
import json
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from config import ProductionConfig
from portal.extensions import db
from portal.jobs.registry import streamiot_kinds
from portal.jobs.runner import drain
from portal.models import Alert, Membership, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from portal.services import webhooks
from portal.services.errors import ValidationFailed
from tests.plugins.accounts import Auth

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PUBLIC_ADDRESS = "93.184.216.34"


@pytest.fixture
def app_overrides():
    # The receiver listens on 127.0.0.1: the test-only allow-list lets the portal reach it.
    return {"WEBHOOK_ALLOW_PRIVATE_FOR_TESTS": ("127.0.0.1/32",)}


# --- the receiver, and a verifier written from the specification ---------------------

class Receiver:
    """A threaded HTTP server on 127.0.0.1 answering the scripted statuses in turn (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[int] = []
        receiver = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                status = receiver.script.pop(0) if receiver.script else 200
                receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "status": status, "path": self.path})
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"thanks" if status < 300 else b"not now")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/iotlock"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        return [r for r in self.requests if 200 <= r["status"] < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def verify(secret: str, headers: dict, body: str, now: datetime, tolerance: int = 300) -> bool:
    """Standard Webhooks verification: HMAC-SHA256 keyed with base64-decoded secret (after
    "whsec_") over "{webhook-id}.{webhook-timestamp}.{body}", base64, any "v1," signature of
    the space-separated list; the timestamp within `tolerance` seconds."""
    timestamp = int(headers["webhook-timestamp"])
    if abs(now.timestamp() - timestamp) > tolerance:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{timestamp}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


# --- helpers ---------------------------------------------------------------------------

@pytest.fixture
def household(app, make_household, add_member, time_machine):
    """An owner logged in (on a frozen clock at START) with a plain member beside them."""
    time_machine.move_to(START, tick=False)
    owner, account = make_household("owner@example.com", "Elm Street")
    member, _ = add_member(account, "member@example.com")
    auth = Auth(app.test_client())
    assert auth.login("owner@example.com").status_code == 302
    return auth, account


def _secret_on(html: str) -> str:
    match = re.search(r'id="webhook-secret"[^>]*value="([^"]+)"', html)
    assert match, "no secret shown"
    return match.group(1)


def _add(auth: Auth, url: str, kinds=("opened",), description="Home server"):
    return auth.post("/webhooks/add", {"url": url, "description": description, "kinds": list(kinds)},
                     page="/webhooks/")


def _alert(account, kind="opened", summary="Front box opened with the PIN “Postman”") -> Alert:
    """An alert as the alerts core makes it, fanned out to the webhooks in its transaction."""
    alert = Alert(account_id=account.id, kind=kind, summary=summary, occurred_at=START)
    db.session.add(alert)
    webhooks.fan_out(alert)
    db.session.commit()
    return alert


def _deliveries() -> list[WebhookDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def _run_until_settled(app, time_machine, max_steps=40) -> WebhookDelivery:
    """Run the jobs; while the one delivery waits for a retry, travel to its next attempt."""
    for _ in range(max_steps):
        drain(app)
        [delivery] = _deliveries()
        if delivery.state not in ("queued", "delivering"):
            return delivery
        time_machine.move_to(delivery.next_attempt_at + timedelta(seconds=1), tick=False)
    raise AssertionError("the delivery never settled")


def _owner_membership(account) -> Membership:
    return db.session.scalars(sa.select(Membership).where(Membership.account_id == account.id,
                                                          Membership.role == "owner")).one()


def _resolving(monkeypatch, names: dict[str, list[str]]):
    """getaddrinfo answering `names` with the given addresses (the rest as usual); returns
    the list of names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def fake(host, port, *args, **kwargs):
        if host in names:
            asked.append(host)
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port) if ":" not in a else (a, port, 0, 0)) for a in names[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


# --- signatures ------------------------------------------------------------------------

def test_a_message_is_signed_with_the_secret_shown_once(app, household, receiver, time_machine):
    auth, account = household
    page = _add(auth, receiver.url)
    assert page.status_code == 200
    secret = _secret_on(page.get_data(as_text=True))
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    # Shown once: not on the page again, and not stored in plain text.
    assert secret not in auth.client.get("/webhooks/").get_data(as_text=True)
    [endpoint] = db.session.scalars(sa.select(WebhookEndpoint)).all()
    assert secret.encode() not in endpoint.secret_enc

    alert = _alert(account)
    assert receiver.requests == []  # nothing is sent in the caller's transaction
    drain(app)
    [request] = receiver.requests
    assert request["path"] == "/hooks/iotlock"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["webhook-id"] == f"msg_{alert.id.hex}"
    assert request["headers"]["webhook-timestamp"] == str(int(START.timestamp()))
    assert verify(secret, request["headers"], request["body"], START)
    assert not verify(webhooks.generate_secret(), request["headers"], request["body"], START)
    body = json.loads(request["body"])
    assert body["type"] == "alert.opened" and body["timestamp"] == "2026-12-01T09:00:00Z"
    assert body["data"] == {
        "id": str(alert.id), "kind": "opened", "summary": "Front box opened with the PIN “Postman”",
        "household": "Elm Street", "box": None, "occurred_at": "2026-12-01T09:00:00Z",
        "url": body["data"]["url"],
    }
    assert body["data"]["url"].endswith("/alerts/")  # no box: the member's list of alerts
    [delivery] = _deliveries()
    assert delivery.state == "delivered"


def test_a_rotated_secret_signs_beside_the_old_one_for_24_hours(app, household, receiver, time_machine):
    auth, account = household
    old = _secret_on(_add(auth, receiver.url).get_data(as_text=True))
    [endpoint] = db.session.scalars(sa.select(WebhookEndpoint)).all()
    rotated = auth.post(f"/webhooks/{endpoint.id}/rotate", page="/webhooks/")
    new = _secret_on(rotated.get_data(as_text=True))
    assert new != old

    _alert(account)
    drain(app)
    [during] = receiver.requests
    assert len(during["headers"]["webhook-signature"].split(" ")) == 2
    assert verify(new, during["headers"], during["body"], START)
    assert verify(old, during["headers"], during["body"], START)

    later = START + timedelta(hours=24, seconds=1)
    time_machine.move_to(later, tick=False)
    _alert(account, summary="Opened again")
    drain(app)
    after = receiver.requests[1]
    assert len(after["headers"]["webhook-signature"].split(" ")) == 1
    assert verify(new, after["headers"], after["body"], later)
    assert not verify(old, after["headers"], after["body"], later)


# --- retries ----------------------------------------------------------------------------

def test_failing_five_times_then_succeeding_ends_in_exactly_one_accepted_delivery(
        app, household, receiver, time_machine):
    auth, account = household
    secret = _secret_on(_add(auth, receiver.url).get_data(as_text=True))
    receiver.script = [500, 503, 502, 429, 404]
    _alert(account)

    delivery = _run_until_settled(app, time_machine)
    assert delivery.state == "delivered"
    assert [r["status"] for r in receiver.requests] == [500, 503, 502, 429, 404, 200]
    assert len(receiver.accepted()) == 1
    # Same message id on every attempt, each signed anew at its own time.
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {delivery.message_id}
    times = [int(r["headers"]["webhook-timestamp"]) for r in receiver.requests]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[0] >= 30  # backing off
    final = receiver.accepted()[0]
    assert verify(secret, final["headers"], final["body"], datetime.fromtimestamp(times[-1], UTC))

    log = auth.client.get(f"/webhooks/{delivery.endpoint_id}/log").get_data(as_text=True)
    assert log.count('class="attempt"') == 6
    for code in ("500", "503", "502", "429", "404", "200"):
        assert f"<td>HTTP {code}</td>" in log
    assert "Delivered" in log and "The endpoint answered 503" in log

    # Nothing is sent again: however often the jobs run, and hours later.
    time_machine.move_to(START + timedelta(hours=30), tick=False)
    drain(app)
    assert len(receiver.requests) == 6


def test_after_24_hours_of_failures_it_gives_up_and_resend_starts_again(app, household, receiver, time_machine):
    auth, account = household
    _add(auth, receiver.url)
    receiver.script = [500] * 100
    _alert(account)

    delivery = _run_until_settled(app, time_machine)
    assert delivery.state == "given_up"
    attempts = db.session.scalars(sa.select(WebhookAttempt).order_by(WebhookAttempt.at)).all()
    # The last attempt as the 24 hours end (the test travels 1 s past each due time).
    assert timedelta(hours=24) <= attempts[-1].at - attempts[0].at < timedelta(hours=24, minutes=1)
    assert 10 <= len(attempts) <= 30
    assert all(a.status_code == 500 for a in attempts) and len(attempts) == len(receiver.requests)
    assert auth.login("owner@example.com").status_code == 302  # a day later: a new session
    assert "gave up" in auth.client.get(f"/webhooks/{delivery.endpoint_id}/log").get_data(as_text=True)

    receiver.script = []
    page = f"/webhooks/{delivery.endpoint_id}/log"
    response = auth.post(f"/webhooks/deliveries/{delivery.id}/resend", page=page)
    assert response.status_code == 302
    resent = _run_until_settled(app, time_machine)
    assert resent.state == "delivered"
    assert receiver.requests[-1]["headers"]["webhook-id"] == delivery.message_id
    assert len(receiver.accepted()) == 1


def test_a_message_still_being_sent_is_not_resent(app, household, receiver, time_machine):
    auth, account = household
    _add(auth, receiver.url)
    receiver.script = [500]
    _alert(account)
    drain(app)
    [delivery] = _deliveries()
    assert delivery.state == "delivering"
    response = auth.post(f"/webhooks/deliveries/{delivery.id}/resend", page="/webhooks/",
                         follow_redirects=True)
    assert "still being sent" in response.get_data(as_text=True)


# --- which endpoints hear what -----------------------------------------------------------

def test_only_enabled_endpoints_that_chose_the_kind_get_it(app, household, receiver, time_machine):
    auth, account = household
    _add(auth, receiver.url + "?opened", kinds=["opened"])
    _add(auth, receiver.url + "?duress", kinds=["duress", "opened"])
    _add(auth, receiver.url + "?off", kinds=["duress"])
    off = db.session.scalars(sa.select(WebhookEndpoint).where(WebhookEndpoint.url.endswith("?off"))).one()
    auth.post(f"/webhooks/{off.id}/turn-off", page="/webhooks/")

    _alert(account, kind="duress", summary="Duress PIN used at Front box")
    drain(app)
    assert [r["path"] for r in receiver.requests] == ["/hooks/iotlock?duress"]


def test_fan_out_without_endpoints_adds_nothing(app, household):
    _auth, account = household
    _alert(account)
    assert _deliveries() == []


def test_webhook_jobs_are_not_held_by_the_platforms_health(app):
    assert webhooks.DELIVER not in streamiot_kinds()


# --- addresses -------------------------------------------------------------------------

@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:8080/hook", "own machine"),
    ("http://[::1]/hook", "own machine"),
    ("http://10.1.2.3/hook", "inside a private network"),
    ("http://192.168.1.20/hook", "inside a private network"),
    ("http://169.254.169.254/latest/meta-data", "inside a private network"),
    ("http://[fe80::1]/hook", "inside a private network"),
    ("http://224.0.0.1/hook", "not on the public internet"),
    ("http://0.0.0.0/hook", "own machine"),
    ("http://[::ffff:10.0.0.1]/hook", "inside a private network"),
])
def test_an_address_inside_is_refused_on_the_field(app, household, monkeypatch, url, words):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_FOR_TESTS", ())
    auth, _account = household
    response = _add(auth, url)
    html = response.get_data(as_text=True)
    assert re.search(r'<p class="field-error" id="url-error">[^<]*' + words, html), html
    assert db.session.scalars(sa.select(WebhookEndpoint)).all() == []


def test_a_name_that_resolves_inside_is_refused_on_the_field(app, household, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_FOR_TESTS", ())
    _resolving(monkeypatch, {"inside.example.com": ["10.0.0.7"],
                             "mixed.example.com": [PUBLIC_ADDRESS, "192.168.0.2"]})
    auth, _account = household
    for name in ("inside.example.com", "mixed.example.com"):
        html = _add(auth, f"https://{name}/hook").get_data(as_text=True)
        assert "This address points inside a private network" in html
    assert db.session.scalars(sa.select(WebhookEndpoint)).all() == []


def test_other_bad_addresses_are_refused_on_the_field(app, household):
    auth, _account = household
    for url, words in (("ftp://example.com/x", "must start with https://"),
                       ("https://user:pw@example.com/x", "user name and password"),
                       ("https://no-such-host.invalid/x", "could not be found")):
        html = _add(auth, url).get_data(as_text=True)
        assert words in html, url


def test_only_https_in_production(app, monkeypatch):
    assert ProductionConfig.WEBHOOK_ALLOW_HTTP is False
    _resolving(monkeypatch, {"hooks.example.com": [PUBLIC_ADDRESS]})
    config = {"WEBHOOK_ALLOW_HTTP": False, "WEBHOOK_ALLOW_PRIVATE_FOR_TESTS": ()}
    with pytest.raises(ValidationFailed, match="must start with https://"):
        webhooks.check_url("http://hooks.example.com/x", config)
    target = webhooks.check_url("https://hooks.example.com/x", config)
    assert target.addresses == (PUBLIC_ADDRESS,)


def test_a_name_that_points_inside_by_sending_time_is_not_sent_to(app, household, receiver, monkeypatch,
                                                                  time_machine):
    """Saved while it resolved to a public address; by the first attempt it resolves inside
    (DNS rebinding): the attempt is refused before any connection, and retried."""
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_FOR_TESTS", ())
    auth, account = household
    _resolving(monkeypatch, {"rebind.example.com": [PUBLIC_ADDRESS]})
    assert "webhook-secret" in _add(auth, f"http://rebind.example.com:{receiver.port}/x").get_data(as_text=True)
    _resolving(monkeypatch, {"rebind.example.com": ["127.0.0.1"]})
    _alert(account)
    drain(app)
    assert receiver.requests == []
    [delivery] = _deliveries()
    assert delivery.state == "delivering"
    [attempt] = db.session.scalars(sa.select(WebhookAttempt)).all()
    assert attempt.status_code is None and attempt.result.startswith("Not sent: This address points at")


def test_the_connection_goes_to_the_address_that_was_vetted(app, household, receiver, monkeypatch, time_machine):
    """The name is looked up once per attempt (by the check), the connection made to that
    address, and the receiver still sees the name in Host."""
    auth, account = household
    asked = _resolving(monkeypatch, {"hooks.example.com": ["127.0.0.1"]})
    _add(auth, f"http://hooks.example.com:{receiver.port}/x")
    asked.clear()
    _alert(account)
    drain(app)
    [request] = receiver.requests
    assert request["headers"]["host"] == f"hooks.example.com:{receiver.port}"
    assert asked == ["hooks.example.com"]


class Dripping:
    """A server on 127.0.0.1 that answers one byte of its status line at a time, each well
    within the read timeout, and never finishes."""

    def __init__(self, every: float):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.every = every
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 10_000:
                    if self.stop.wait(self.every):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    def close(self):
        self.stop.set()
        self.listener.close()


def test_an_endpoint_that_drips_its_answer_is_cut_off_at_the_total_time(app, household, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_READ_TIMEOUT", 1.0)
    monkeypatch.setitem(app.config, "WEBHOOK_TOTAL_SECONDS", 1.5)
    server = Dripping(every=0.1)
    try:
        auth, account = household
        _add(auth, f"http://127.0.0.1:{server.port}/drip")
        _alert(account)
        drain(app)
        attempt = db.session.scalars(sa.select(WebhookAttempt)).one()
        assert attempt.result == "No full answer within 1.5 s"
        assert attempt.status_code is None
        [delivery] = _deliveries()
        assert delivery.state == "delivering" and delivery.next_attempt_at is not None  # retried later
    finally:
        server.close()


# --- the owner's pages ---------------------------------------------------------------------

def test_an_owner_turns_a_webhook_off_and_on_and_deletes_it_with_its_log(app, household, receiver):
    auth, account = household
    _add(auth, receiver.url)
    [endpoint] = db.session.scalars(sa.select(WebhookEndpoint)).all()
    _alert(account)
    drain(app)

    off = auth.post(f"/webhooks/{endpoint.id}/turn-off", page="/webhooks/", follow_redirects=True)
    assert f"Alerts no longer go to {receiver.url}." in off.get_data(as_text=True)
    _alert(account, summary="Not sent")
    on = auth.post(f"/webhooks/{endpoint.id}/turn-on", page="/webhooks/", follow_redirects=True)
    assert f"Alerts go to {receiver.url} again." in on.get_data(as_text=True)
    drain(app)
    assert len(receiver.requests) == 1

    gone = auth.post(f"/webhooks/{endpoint.id}/delete", page="/webhooks/", follow_redirects=True)
    html = gone.get_data(as_text=True)
    assert "is deleted, with its delivery log" in html and "0 webhooks" in html
    assert _deliveries() == [] and db.session.scalars(sa.select(WebhookAttempt)).all() == []
    assert auth.client.get(f"/webhooks/{endpoint.id}/log").status_code == 404


def test_only_owners_see_the_way_to_webhooks(app, household):
    auth, _account = household
    assert "/webhooks/" in auth.client.get("/settings").get_data(as_text=True)
    member = Auth(app.test_client())
    assert member.login("member@example.com").status_code == 302
    assert "/webhooks/" not in member.client.get("/settings").get_data(as_text=True)
    assert member.client.get("/webhooks/").status_code == 403

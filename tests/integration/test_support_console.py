"""The support console: who may reach it, search, the household view (without a single PIN
or secret), the one write it allows, and the household's own record of every visit."""
import base64
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, Command, Gateway, Job, Mailbox, Pin, new_id, utcnow
from tests.plugins.accounts import csrf_from
from tests.plugins.support import isolated_client

pytestmark = pytest.mark.rollback


@pytest.fixture
def client(app):
    return isolated_client(app)


def _household_url(h) -> str:
    return f"/support/households/{h.account.id}"


def _requeue_url(h, command) -> str:
    return f"{_household_url(h)}/commands/{command.id}/requeue"


def _post(client, url, page="/support/", data=None):
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **(data or {})})


def _reload(row):
    db.session.expire_all()
    return db.session.get(type(row), row.id)


# --- who may reach it -------------------------------------------------------------------

def test_household_member_gets_403_everywhere_in_the_console(client, auth, secret_household):
    auth.register("bob@example.com", household="Bob's place")
    assert client.get("/support/").status_code == 403
    assert client.get(_household_url(secret_household)).status_code == 403
    response = _post(client, _requeue_url(secret_household, secret_household.failed), page="/gateways/")
    assert response.status_code == 403
    assert _reload(secret_household.failed).state == "failed"


def test_anonymous_visitor_is_sent_to_login(client, secret_household):
    response = client.get(_household_url(secret_household))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/support/households/")


def test_staff_without_second_factor_cannot_open_a_household(client, staff, secret_household):
    staff.create()
    staff.login()
    response = client.get(_household_url(secret_household))
    assert response.status_code == 302 and "/support/enrol" in response.headers["Location"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ActivityEvent).where(
        ActivityEvent.kind == "support.viewed")) == 0


def test_staff_with_totp_reach_the_console(client, signed_in_staff):
    page = client.get("/support/").get_data(as_text=True)
    assert "Find a household" in page


# --- search -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "query",
    ["olga@EXAMPLE", "lindenweg", "porch", "front door", "thg-0a1b2c3d", "chn-gw-4e5f6a7b", "chn-mb-8c9d0e1f",
     "pth-5a5a0001", "usr-7f00c1de"],
)
def test_search_finds_the_household_by_email_name_device_or_streamiot_id(client, signed_in_staff, secret_household, query):
    page = client.get("/support/", query_string={"q": query}).get_data(as_text=True)
    assert "Lindenweg 7" in page
    assert _household_url(secret_household) in page


def test_search_matches_ids_exactly_and_says_when_nothing_matches(client, signed_in_staff, secret_household):
    page = client.get("/support/", query_string={"q": "thg-0a1b"}).get_data(as_text=True)
    assert "Lindenweg 7" not in page
    assert "No household matches" in page
    # LIKE wildcards are plain characters here.
    assert "Lindenweg 7" not in client.get("/support/", query_string={"q": "%"}).get_data(as_text=True)


def test_search_results_are_paged(client, signed_in_staff, make_household):
    for n in range(23):
        make_household(f"owner{n:02d}@paging.example", f"Paging house {n:02d}")
    first = client.get("/support/", query_string={"q": "paging"}).get_data(as_text=True)
    assert "23 households match" in first and "page 1 of 2" in first
    assert "Paging house 00" in first and "Paging house 19" in first and "Paging house 20" not in first
    second = client.get("/support/", query_string={"q": "paging", "page": 2}).get_data(as_text=True)
    assert "Paging house 22" in second and "Paging house 00" not in second


def test_search_over_htmx_returns_only_the_results(client, signed_in_staff, secret_household):
    response = client.get("/support/", query_string={"q": "porch"}, headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="results"')
    assert "Lindenweg 7" in html


# --- the household view -----------------------------------------------------------------

def test_household_view_shows_members_devices_ids_and_the_message_trace(client, signed_in_staff, secret_household):
    html = client.get(_household_url(secret_household)).get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "olga@example.com Owner" in text
    assert "Gateway “Porch hub” Online" in text
    assert "thg-0a1b2c3d" in text and "chn-gw-4e5f6a7b" in text and "chn-mb-8c9d0e1f" in text
    assert "87 %" in text and "closed" in text
    # PINs by label and state only.
    assert "“Grandma” Confirmed on the box" in text
    assert "“Parcel courier” Failed Not delivered" in text
    # The confirmed PIN: sent, answered, and the time between them.
    assert "Add PIN “Grandma” AUTH Confirmed on the box" in text and "1.4 s" in text
    # The failed one, with its reason and the attempts spent.
    assert "Add PIN “Parcel courier” AUTH Failed" in text
    assert "Not delivered: StreamIoT did not accept it after 12 attempts." in text
    assert "12 of 12" in text and "StreamIoT unavailable: 503" in text
    # Failed jobs, with attempts and last error.
    assert "Failed" in text and "3 of 12" in text


def test_pending_jobs_show_attempts_and_next_attempt(client, signed_in_staff, secret_household):
    db.session.add(Job(account_id=secret_household.account.id, kind="provision_mailbox", target="x", state="queued",
                       attempts=2, run_after=utcnow() + timedelta(minutes=3), last_error="StreamIoT unavailable: timeout"))
    db.session.commit()
    html = client.get(_household_url(secret_household)).get_data(as_text=True)
    pending = html.split("<h3>Pending</h3>", 1)[1].split("<h3>Failed</h3>", 1)[0]
    assert "provision mailbox" in pending and "2 of 12" in pending and "in 2 minutes" in pending
    assert "StreamIoT unavailable: timeout" in pending


def test_unknown_household_is_404(client, signed_in_staff):
    assert client.get(f"/support/households/{new_id()}").status_code == 404


def _secret_needles(h) -> list[str]:
    """Every planted secret, plus its ciphertext in the encodings a page could show."""
    p = h.plants
    needles = [p.pin_grandma, p.pin_courier, p.thing_key, p.portal_thing_key, p.streamiot_password, p.streamiot_token]
    db.session.expire_all()
    account = db.session.get(type(h.account), h.account.id)
    gateway = db.session.get(Gateway, h.gateway.id)
    pins = [db.session.get(Pin, pin.id) for pin in (h.grandma, h.courier)]
    blobs = [account.streamiot_password_enc, account.streamiot_token_enc, account.portal_thing_key_enc,
             gateway.thing_key_enc, *(pin.digits_enc for pin in pins)]
    for blob in blobs:
        needles += [base64.b64encode(blob).decode(), base64.urlsafe_b64encode(blob).decode(), blob.hex()]
    needles += [pin.digits_digest for pin in pins]
    return needles


def test_no_console_response_contains_a_pin_or_a_secret(client, signed_in_staff, secret_household):
    h = secret_household
    responses = [
        client.get("/support/"),
        client.get(_household_url(h)),
        client.get(_household_url(h), headers={"HX-Request": "true"}),
        client.get("/support/verify", follow_redirects=True),
        client.get("/support/enrol", follow_redirects=True),
    ]
    for query in ("olga", "Lindenweg", "Porch hub", "Front door", "thg-0a1b2c3d", "chn-mb-8c9d0e1f"):
        responses.append(client.get("/support/", query_string={"q": query}))
    responses.append(_post(client, _requeue_url(h, h.failed), page=_household_url(h)))
    responses.append(client.get(_household_url(h)))
    needles = _secret_needles(h)
    for response in responses:
        body = response.get_data(as_text=True) + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for needle in needles:
            assert needle not in body, f"a secret leaked into {response.request.path}"
    # The thing key planted in a job's error text is blanked out, not repeated.
    assert "[hidden]" in responses[1].get_data(as_text=True)


def test_search_by_a_pin_or_a_key_finds_nothing(client, signed_in_staff, secret_household):
    # Otherwise the search box would be an oracle for guessing a household's PINs.
    p = secret_household.plants
    for query in (p.pin_grandma, p.thing_key, p.streamiot_password, p.portal_thing_key):
        page = client.get("/support/", query_string={"q": query}).get_data(as_text=True)
        assert "No household matches" in page and "Lindenweg 7" not in page


# --- nothing else writes ----------------------------------------------------------------

SIGN_IN_FORMS = {"support.set_password", "support.enrol", "support.verify"}


def test_every_non_get_request_in_the_console_except_requeue_is_403(app, client, signed_in_staff, secret_household):
    h = secret_household
    args = {"account_id": h.account.id, "command_id": h.failed.id, "token": "not-a-token"}
    token = csrf_from(client.get("/support/").get_data(as_text=True))
    checked = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/support"):
            continue
        url = rule.rule
        for name in rule.arguments:
            url = re.sub(rf"<(?:[^:<>]+:)?{name}>", str(args[name]), url)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            if rule.endpoint in SIGN_IN_FORMS and method in rule.methods:
                continue
            if rule.endpoint == "support.requeue" and method == "POST":
                continue
            response = client.open(url, method=method, data={"csrf_token": token},
                                   headers={"X-CSRFToken": token})
            assert response.status_code == 403, (method, url, response.status_code)
            checked.append((method, rule.endpoint))
    # Also where no route exists at all.
    assert client.delete("/support/households", headers={"X-CSRFToken": token}).status_code == 403
    assert len(checked) >= 12
    assert _reload(h.failed).state == "failed"
    assert _reload(h.failed_job).state == "failed"


def test_staff_get_403_on_household_pages_and_their_forms(client, signed_in_staff, secret_household):
    token = csrf_from(client.get("/support/").get_data(as_text=True))
    assert client.get("/gateways/").status_code == 403
    assert client.get("/activity").status_code == 403
    client.post("/household/switch", data={"csrf_token": token, "account_id": str(secret_household.account.id)})
    assert client.get("/gateways/").status_code == 403
    assert client.get("/members/").status_code == 403


# --- the household sees every visit -----------------------------------------------------

def _events(kind):
    db.session.expire_all()
    return db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == kind)).all()


def test_each_visit_is_in_the_households_activity_log_once_per_ten_minutes(client, signed_in_staff, secret_household):
    h = secret_household
    client.get(_household_url(h))
    client.get(_household_url(h))
    events = _events("support.viewed")
    assert len(events) == 1
    event = events[0]
    assert event.account_id == h.account.id and event.actor_kind == "support"
    assert event.actor_label == "Support (Sam)" and event.actor_user_id == signed_in_staff[0].id

    event.occurred_at = utcnow() - timedelta(minutes=11)
    db.session.commit()
    client.get(_household_url(h))
    assert len(_events("support.viewed")) == 2

    # The household's members read it in their own log.
    owner = isolated_client(client.application)
    from tests.plugins.accounts import Auth
    Auth(owner).login("olga@example.com")
    log = owner.get("/activity").get_data(as_text=True)
    assert "Support (Sam)" in log and "Viewed your household in the support console." in log


def test_search_alone_is_not_a_visit(client, signed_in_staff, secret_household):
    client.get("/support/", query_string={"q": "olga"})
    assert _events("support.viewed") == []


# --- requeue ----------------------------------------------------------------------------

def test_requeue_puts_the_failed_delivery_back_in_the_queue_and_tells_the_household(client, signed_in_staff, secret_household):
    h = secret_household
    response = _post(client, _requeue_url(h, h.failed), page=_household_url(h))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{_household_url(h)}#command-{h.failed.id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Requeued the delivery of PIN “Parcel courier”" in page

    command, job = _reload(h.failed), _reload(h.failed_job)
    assert command.state == "queued" and command.reason is None
    assert job.state == "queued" and job.attempts == 0 and job.run_after <= utcnow()
    [event] = _events("support.requeued")
    assert event.actor_label == "Support (Sam)" and event.mailbox_id == h.mailbox.id
    assert event.summary == "Requeued the delivery of PIN “Parcel courier”."


def test_requeue_refuses_a_delivery_that_did_not_fail(client, signed_in_staff, secret_household):
    h = secret_household
    response = _post(client, _requeue_url(h, h.confirmed), page=_household_url(h))
    assert response.status_code == 302
    assert "Only a failed delivery can be requeued." in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _reload(h.confirmed).state == "confirmed"
    assert _events("support.requeued") == []


def test_requeue_never_resends_a_pin_that_was_removed_since(client, signed_in_staff, secret_household):
    h = secret_household
    pin = _reload(h.courier)
    pin.status = "removing"
    db.session.add(Command(account_id=h.account.id, gateway_id=h.gateway.id, mailbox_id=h.mailbox.id, pin_id=pin.id,
                           action="UNAUTH", channel_key="mailbox", state="queued"))
    db.session.commit()
    html = client.get(_household_url(h)).get_data(as_text=True)
    assert _requeue_url(h, h.failed) not in html
    _post(client, _requeue_url(h, h.failed), page=_household_url(h))
    assert _reload(h.failed).state == "failed" and _reload(h.failed_job).state == "failed"


def test_requeue_of_another_households_command_is_404(client, signed_in_staff, secret_household, make_household):
    _owner, other = make_household("zed@example.com", "Other house")
    response = _post(client, f"/support/households/{other.id}/commands/{secret_household.failed.id}/requeue")
    assert response.status_code == 404
    assert _reload(secret_household.failed).state == "failed"


def test_household_page_polls_while_a_delivery_is_on_its_way_and_stops_after(client, signed_in_staff, secret_household):
    h = secret_household
    idle = client.get(_household_url(h)).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' not in idle
    _post(client, _requeue_url(h, h.failed), page=_household_url(h))
    busy = client.get(_household_url(h), headers={"HX-Request": "true"}).get_data(as_text=True)
    assert busy.lstrip().startswith("<div id=\"devices\"")
    assert 'hx-trigger="every 2s"' in busy and "X-IoTLock-Poll" in busy


def _queries_for(client, url) -> int:
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    return len(statements)


def test_household_view_costs_the_same_queries_for_one_box_or_twenty(client, signed_in_staff, secret_household):
    h = secret_household
    url = _household_url(h)
    client.get(url)  # the visit is recorded once; later views within 10 minutes do not write
    small = _queries_for(client, url)
    for n in range(20):
        box = Mailbox(id=new_id(), account_id=h.account.id, gateway_id=h.gateway.id, name=f"Box {n}",
                      public_key="C" * 43 + "=", status="active", channel_id=f"chn-{n}")
        db.session.add(box)
        db.session.flush()
        for k in range(5):
            pin = Pin(id=new_id(), account_id=h.account.id, mailbox_id=box.id, label=f"P{k}", status="active",
                      digits_enc=b"", digits_digest=f"d-{n}-{k}")
            db.session.add(pin)
            db.session.flush()
            db.session.add(Command(account_id=h.account.id, gateway_id=h.gateway.id, mailbox_id=box.id, pin_id=pin.id,
                                   action="AUTH", channel_key="mailbox", state="confirmed"))
    db.session.commit()
    assert _queries_for(client, url) == small

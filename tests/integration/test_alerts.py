"""Alerts (issue 13): the right members hear about the right events on the channels they
chose; quiet hours hold back all but duress; email goes through a real SMTP server (aiosmtpd)
with a one-click unsubscribe that works; a mail outage loses nothing and sends nothing twice;
the bell counts and lists a member's alerts; the settings page keeps what was chosen."""
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.jobs.runner import drain
from portal.models import Alert, Gateway, Job, Mailbox, Membership, Notification, Pin, utcnow
from portal.services import accounts, activity, alert_detection, alerts, members
from portal.services.notifications import NotificationState
from tests.plugins.accounts import PASSWORD, Auth, csrf_from

DIGITS = "480913"
START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday, 13:00 in Berlin


@pytest.fixture
def home(app, make_household, add_member):
    """A household (Berlin time) with an owner, a member, a gateway and two boxes."""
    owner, account = make_household("owner@example.com", "Elm Street")
    account.time_zone = "Europe/Berlin"
    member, _ = add_member(account, "member@example.com")
    gateway = Gateway(account_id=account.id, name="Hallway", public_key=crypto.generate_keypair()[0], status="active",
                      last_heartbeat_at=utcnow())
    db.session.add(gateway)
    db.session.flush()
    boxes = []
    for name in ("Front box", "Parcel box"):
        box = Mailbox(account_id=account.id, gateway_id=gateway.id, name=name, public_key=gateway.public_key,
                      status="active", is_open=False)
        db.session.add(box)
        boxes.append(box)
    db.session.commit()
    return type("Home", (), {"owner": owner, "member": member, "account": account, "gateway": gateway,
                             "front": boxes[0], "parcel": boxes[1]})


def _box_event(home, box, kind, summary, details=None, when=None):
    """What portal/services/device_reports.py records for a box's report."""
    activity.record(home.account.id, kind=kind, summary=summary, actor_kind="box", actor_label=box.name,
                    gateway_id=home.gateway.id, mailbox_id=box.id, details=details, occurred_at=when)
    db.session.commit()


def _notifications(user, channel=None, kind=None) -> list[tuple[str, str]]:
    """(alert kind, channel) of each notification `user` got, in order of alerts, then channel."""
    db.session.expire_all()
    stmt = (sa.select(Alert.kind, Notification.channel).join(Alert, Alert.id == Notification.alert_id)
            .where(Notification.user_id == user.id).order_by(Alert.created_at, Notification.channel))
    if channel:
        stmt = stmt.where(Notification.channel == channel)
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    return [tuple(r) for r in db.session.execute(stmt)]


def _membership(user, home) -> Membership:
    return db.session.scalars(sa.select(Membership).where(Membership.user_id == user.id,
                                                          Membership.account_id == home.account.id)).one()


def _ticked(html: str, box_id: str) -> bool:
    tag = re.search(rf'<input[^>]*id="{box_id}"[^>]*>', html)
    assert tag is not None, box_id
    return " checked" in tag.group(0)


def _login(app, user) -> Auth:
    auth = Auth(app.test_client())
    assert auth.login(user.email, PASSWORD).status_code == 302
    return auth


# --- who hears what ---------------------------------------------------------------------

def test_a_member_who_chose_opened_for_one_box_hears_only_of_that_box(app, home):
    alerts.save_preferences(_membership(home.member, home), {("opened", "portal")}, home.front.id)
    _box_event(home, home.front, "box.opened_pin", "Opened with PIN “Cleaner”")
    _box_event(home, home.parcel, "box.opened_pin", "Opened with PIN “Cleaner”")
    assert _notifications(home.member) == [("opened", "portal")]
    assert _notifications(home.owner) == []  # openings are off until chosen
    [summary] = db.session.scalars(sa.select(Alert.summary).where(Alert.mailbox_id == home.front.id)).all()
    assert summary == "Front box: Opened with PIN “Cleaner”"


def test_defaults_bring_a_wrong_pin_burst_to_every_member_on_every_channel_they_have(app, home):
    for attempt in (1, 2, 3):
        _box_event(home, home.front, "box.rejected", f"Wrong PIN entered ({attempt})", {"attempts": attempt})
    _box_event(home, home.front, "box.rejected", "Wrong PIN entered (4)", {"attempts": 4})
    # Push only reaches members with a browser; portal and email reach both, once per burst.
    assert _notifications(home.owner) == [("wrong_pins", "email"), ("wrong_pins", "portal")]
    assert _notifications(home.member) == [("wrong_pins", "email"), ("wrong_pins", "portal")]


def test_a_single_wrong_pin_is_not_an_alert(app, home):
    _box_event(home, home.front, "box.rejected", "Wrong PIN entered (1 wrong attempt)", {"attempts": 1})
    assert _notifications(home.owner) == []


def test_duress_reaches_owners_only_even_when_they_turned_it_off_and_in_quiet_hours(app, home, time_machine):
    time_machine.move_to(datetime(2026, 12, 2, 22, 30, tzinfo=UTC), tick=False)  # 23:30 in Berlin
    owner = _membership(home.owner, home)
    alerts.set_quiet_hours(owner, "22:00", "07:00")
    alerts.save_preferences(owner, set())  # everything off, as far as the form goes
    _box_event(home, home.front, "box.duress", "Opened under duress with the duress PIN of Alice")
    assert _notifications(home.owner) == [("duress", "email"), ("duress", "portal")]
    assert _notifications(home.member) == []
    email = db.session.scalars(sa.select(Notification).where(Notification.channel == "email")).one()
    assert email.state == NotificationState.QUEUED and email.hold_until is None


def test_quiet_hours_hold_email_until_they_end_in_the_household_zone(app, home, time_machine):
    time_machine.move_to(datetime(2026, 12, 2, 22, 30, tzinfo=UTC), tick=False)  # 23:30 in Berlin
    alerts.set_quiet_hours(_membership(home.member, home), "22:00", "07:00")
    _box_event(home, home.front, "box.lockout", "Keypad locked out after wrong PINs")
    held = db.session.scalars(sa.select(Notification).where(Notification.user_id == home.member.id,
                                                            Notification.channel == "email")).one()
    assert held.state == NotificationState.HELD
    assert held.hold_until == datetime(2026, 12, 3, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
    job = db.session.scalars(sa.select(Job).where(Job.payload["notification_id"].as_string() == str(held.id))).one()
    assert job.run_after == held.hold_until
    owner_email = db.session.scalars(sa.select(Notification).where(Notification.user_id == home.owner.id,
                                                                   Notification.channel == "email")).one()
    assert owner_email.state == NotificationState.QUEUED  # the owner has no quiet hours
    # The bell is silent anyway: it shows at once.
    assert ("locked_out", "portal") in _notifications(home.member)


@pytest.mark.parametrize("now,quiet,expected", [
    (datetime(2026, 12, 2, 21, 59, tzinfo=UTC), ("22:00", "07:00"), datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
    (datetime(2026, 12, 2, 20, 59, tzinfo=UTC), ("22:00", "07:00"), None),  # 21:59 Berlin
    (datetime(2026, 12, 3, 5, 59, tzinfo=UTC), ("22:00", "07:00"), datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
    (datetime(2026, 12, 3, 6, 0, tzinfo=UTC), ("22:00", "07:00"), None),
    (datetime(2026, 12, 2, 12, 0, tzinfo=UTC), ("12:00", "14:00"), datetime(2026, 12, 2, 13, 0, tzinfo=UTC)),
    (datetime(2026, 12, 2, 12, 0, tzinfo=UTC), None, None),
])
def test_quiet_hours_end_where_the_household_clock_says(now, quiet, expected):
    start, end = quiet or (None, None)
    assert alerts.quiet_until(start, end, ZoneInfo("Europe/Berlin"), now) == expected


def test_the_member_whose_action_it_was_is_not_told_about_it(app, home):
    members.leave(_membership(home.member, home), home.member)
    assert ("member_left", "portal") in _notifications(home.owner)
    assert _notifications(home.member) == []


def test_household_defaults_apply_to_members_who_have_not_chosen(app, home):
    owner = _membership(home.owner, home)
    alerts.save_preferences(owner, {("opened", "email")}, household=True)
    alerts.save_preferences(owner, {("opened", "portal")})  # the owner's own choice wins for them
    _box_event(home, home.front, "box.opened_remote", "Opened remotely")
    assert _notifications(home.member) == [("opened", "email")]
    assert _notifications(home.owner) == [("opened", "portal")]


def test_a_plain_member_cannot_set_household_defaults(app, home):
    with pytest.raises(alerts.Forbidden):
        alerts.save_preferences(_membership(home.member, home), set(), household=True)


def test_no_alert_carries_pin_digits(app, home, smtp_server):
    pin_id = uuid.uuid4()
    db.session.add(Pin(id=pin_id, account_id=home.account.id, mailbox_id=home.front.id, label="Cleaner",
                       digits_enc=crypto.encrypt(DIGITS, table="pins", column="digits_enc", row_id=pin_id),
                       digits_digest=crypto.keyed_digest("pin", DIGITS), status="active",
                       ends_at=utcnow() + timedelta(hours=3)))
    db.session.commit()
    alerts.save_preferences(_membership(home.owner, home), {(k, c) for k in alerts.ALERT_KINDS for c in alerts.CHANNELS})
    _box_event(home, home.front, "box.opened_pin", "Opened with PIN “Cleaner”", {"pin_id": str(pin_id)})
    alert_detection.scan()
    drain(app)
    texts = [a.summary + repr(a.details) for a in db.session.scalars(sa.select(Alert))]
    texts += [m.as_string() for m in smtp_server.messages]
    assert len(texts) >= 4 and all(DIGITS not in t for t in texts)


# --- email ------------------------------------------------------------------------------

def test_an_alert_email_has_text_html_and_a_one_click_unsubscribe(app, home, smtp_server, client):
    _box_event(home, home.front, "box.lockout", "Keypad locked out until 14:05 after wrong PINs")
    drain(app)
    [message] = smtp_server.to("member@example.com")
    assert message["Subject"] == "IoTLock: Front box: Keypad locked out until 14:05 after wrong PINs"
    text = smtp_server.text_of(message)
    assert "Household: Elm Street" in text and "Box: Front box" in text and "(Europe/Berlin)" in text
    assert "See it in IoTLock" in message.get_body(("html",)).get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip("<>")
    path = link.split("://", 1)[1].split("/", 1)[1]

    asked = client.get("/" + path)  # a link scanner's GET changes nothing
    assert asked.status_code == 200 and "Stop these emails?" in asked.get_data(as_text=True)
    one_click = client.post("/" + path, data={"List-Unsubscribe": "One-Click"})  # no session, no CSRF
    assert one_click.status_code == 200 and "Unsubscribed" in one_click.get_data(as_text=True)

    _box_event(home, home.parcel, "box.lockout", "Keypad locked out after wrong PINs")
    drain(app)
    assert len(smtp_server.to("member@example.com")) == 1  # no more lockout emails
    assert len(smtp_server.to("owner@example.com")) == 2  # the owner's link was not used
    assert _notifications(home.member, kind="locked_out", channel="portal") == [("locked_out", "portal")] * 2


def test_a_forged_unsubscribe_link_is_404_and_changes_nothing(app, home, client):
    token = alerts.unsubscribe_token(home.member.id, home.account.id, "locked_out")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.post(f"/alerts/unsubscribe/{forged}").status_code == 404
    assert client.post(f"/alerts/unsubscribe/{token}").status_code == 200
    other = alerts.unsubscribe_token(home.member.id, uuid.uuid4(), "locked_out")  # not their household
    assert client.post(f"/alerts/unsubscribe/{other}").status_code == 404


def test_a_30_second_mail_outage_loses_nothing_and_sends_each_alert_once(app, home, smtp_server, time_machine):
    time_machine.move_to(START, tick=False)
    smtp_server.refuse = True
    _box_event(home, home.front, "box.lockout", "Keypad locked out after wrong PINs")
    drain(app)
    assert smtp_server.refused == 2 and smtp_server.messages == []
    waiting = db.session.scalars(sa.select(Notification).where(Notification.channel == "email")).all()
    assert {n.state for n in waiting} == {NotificationState.QUEUED}
    assert all("mail server" in (n.error or "") for n in waiting)

    smtp_server.refuse = False
    time_machine.move_to(START + timedelta(seconds=31), tick=False)
    drain(app)
    drain(app)
    assert sorted(m["To"] for m in smtp_server.messages) == ["member@example.com", "owner@example.com"]
    db.session.expire_all()
    assert {n.state for n in db.session.scalars(sa.select(Notification).where(Notification.channel == "email"))} == {
        NotificationState.SENT}
    time_machine.move_to(START + timedelta(hours=2), tick=False)
    drain(app)
    assert len(smtp_server.messages) == 2


def test_without_a_mail_server_alert_emails_are_logged_not_lost_silently(app, home, caplog):
    with caplog.at_level(logging.INFO, logger="portal.services.mail"):
        _box_event(home, home.front, "box.lockout", "Keypad locked out after wrong PINs")
        drain(app)
    states = {n.state for n in db.session.scalars(sa.select(Notification).where(Notification.channel == "email"))}
    assert states == {NotificationState.SKIPPED}
    assert "Subject: IoTLock: Front box: Keypad locked out" in caplog.text


# --- found by looking -------------------------------------------------------------------

def test_a_gateway_offline_is_alerted_once_and_its_return_once(app, home, time_machine):
    time_machine.move_to(START, tick=False)
    home.gateway.last_heartbeat_at = START
    db.session.commit()
    time_machine.move_to(START + timedelta(minutes=11), tick=False)
    assert alert_detection.scan().offline == 1
    assert alert_detection.scan().offline == 0
    db.session.execute(sa.update(Gateway).values(last_heartbeat_at=START + timedelta(minutes=12)))
    db.session.commit()
    time_machine.move_to(START + timedelta(minutes=12, seconds=5), tick=False)
    assert alert_detection.scan().online == 1
    assert alert_detection.scan().online == 0
    assert [k for k, c in _notifications(home.owner) if c == "portal"] == ["gateway_offline", "gateway_online"]
    [offline] = db.session.scalars(sa.select(Alert.summary).where(Alert.kind == "gateway_offline")).all()
    assert offline == "Gateway “Hallway” is offline: last heard Wed 13:00"


def test_a_box_left_open_is_alerted_once_where_the_box_reports_closing(app, home, time_machine):
    time_machine.move_to(START, tick=False)
    _box_event(home, home.front, "box.closed", "Closed")
    _box_event(home, home.front, "box.opened_pin", "Opened with PIN “Cleaner”")
    _box_event(home, home.parcel, "box.opened_pin", "Opened with PIN “Cleaner”")  # never reported closing
    db.session.execute(sa.update(Mailbox).values(is_open=True))
    db.session.commit()
    time_machine.move_to(START + timedelta(minutes=9), tick=False)
    assert alert_detection.scan().left_open == 0
    time_machine.move_to(START + timedelta(minutes=11), tick=False)
    assert alert_detection.scan().left_open == 1
    assert alert_detection.scan().left_open == 0
    [summary] = db.session.scalars(sa.select(Alert.summary).where(Alert.kind == "left_open")).all()
    assert summary == "Front box: open for 11 minutes (since Wed 13:00)"


def test_a_pin_about_to_expire_is_alerted_once(app, home, time_machine):
    time_machine.move_to(START, tick=False)
    pin_id = uuid.uuid4()
    db.session.add(Pin(id=pin_id, account_id=home.account.id, mailbox_id=home.front.id, label="Cleaner",
                       digits_enc=b"x", digits_digest="d" * 64, status="active", assigned_to_id=home.member.id,
                       ends_at=START + timedelta(hours=5)))
    db.session.commit()
    assert alert_detection.scan().expiring == 1
    assert alert_detection.scan().expiring == 0
    [summary] = db.session.scalars(sa.select(Alert.summary).where(Alert.kind == "pin_expiring")).all()
    assert summary == "Front box: PIN “Cleaner” (member@example.com’s) stops working Wed 18:00"


# --- the bell and the pages -------------------------------------------------------------

def test_the_bell_counts_unread_alerts_and_the_list_marks_them_read(app, home):
    auth = _login(app, home.owner)
    _box_event(home, home.front, "box.lockout", "Keypad locked out after wrong PINs")
    _box_event(home, home.front, "box.parcel_delivered", "Parcel delivered (“DHL”)")
    bell = auth.client.get("/alerts/bell").get_data(as_text=True)
    assert ">2</span>" in bell and "Alerts: 2 unread" in bell
    page = auth.client.get("/alerts/").get_data(as_text=True)
    assert "Front box: Parcel delivered (“DHL”)" in page and page.index("Parcel delivered") < page.index("locked out")
    member_bell = _login(app, home.member).client.get("/alerts/bell").get_data(as_text=True)
    assert "2 unread" in member_bell  # read per member
    response = auth.post("/alerts/read", {}, page="/alerts/")
    assert response.status_code == 303
    assert "unread" not in auth.client.get("/alerts/bell").get_data(as_text=True)
    assert "2 unread" in _login(app, home.member).client.get("/alerts/bell").get_data(as_text=True)


BELL = re.compile(r'<a id="alert-bell"[^>]*>')
POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}


def _bell_asks(html) -> tuple[str, str, bool]:
    """Where the bell on this page polls, the version it asks with, and whether it says it is
    the current page."""
    tag = BELL.search(html).group(0)
    url = re.search(r'hx-get="([^"]+)"', tag).group(1).replace("&amp;", "&")
    version = re.search(r'"If-None-Match": "\\"([^\\]+)\\""', tag).group(1)
    return url, f'"{version}"', 'aria-current="page"' in tag


def test_the_bell_answers_304_while_its_count_holds(app, home):
    auth = _login(app, home.owner)
    url, version, _current = _bell_asks(auth.client.get("/gateways/").get_data(as_text=True))
    unchanged = auth.client.get(url, headers=dict(POLL, **{"If-None-Match": version}))
    assert unchanged.status_code == 304 and unchanged.get_data() == b""
    _box_event(home, home.front, "box.lockout", "Keypad locked out after wrong PINs")
    rung = auth.client.get(url, headers=dict(POLL, **{"If-None-Match": version}))
    assert rung.status_code == 200 and "Alerts: 1 unread" in rung.get_data(as_text=True)
    url, version, _current = _bell_asks(rung.get_data(as_text=True))
    assert auth.client.get(url, headers=dict(POLL, **{"If-None-Match": version})).status_code == 304
    auth.post("/alerts/read", {}, page="/alerts/")
    read = auth.client.get(url, headers=dict(POLL, **{"If-None-Match": version}))
    assert read.status_code == 200 and "unread" not in read.get_data(as_text=True)


def test_the_polled_bell_is_the_current_page_only_on_the_alerts_pages(app, home):
    """The poll is a request for the bell, not for the page: it once came back as the current
    page everywhere, two seconds after any page loaded."""
    auth = _login(app, home.owner)
    for page, current in (("/gateways/", False), ("/activity", False), ("/alerts/", True),
                          ("/alerts/settings", True)):
        url, _version, shown = _bell_asks(auth.client.get(page).get_data(as_text=True))
        polled = auth.client.get(url, headers=POLL).get_data(as_text=True)
        assert (shown, _bell_asks(polled)[2]) == (current, current), page


def test_settings_page_saves_the_matrix_per_box_and_reads_it_back(app, home):
    auth = _login(app, home.member)
    page = auth.client.get("/alerts/settings").get_data(as_text=True)
    assert "A duress PIN was used" not in page  # owners only
    assert _ticked(page, "wrong_pins-email")
    response = auth.client.post("/alerts/settings", data={
        "box": str(home.front.id), "opened.push": "on", "opened.portal": "on", "csrf_token": csrf_from(page)})
    assert response.status_code == 303
    box_page = auth.client.get(f"/alerts/settings?box={home.front.id}").get_data(as_text=True)
    assert "Choices for <strong>Front box</strong> only" in box_page
    assert _ticked(box_page, "opened-push")
    assert not _ticked(box_page, "wrong_pins-email")  # unticked: off here
    assert "Front box (own choices)" in box_page
    all_page = auth.client.get("/alerts/settings").get_data(as_text=True)
    assert not _ticked(all_page, "opened-push")
    other = auth.client.get(f"/alerts/settings?box={uuid.uuid4()}")
    assert other.status_code == 404


def test_bad_quiet_hours_are_answered_on_the_field(app, home):
    auth = _login(app, home.member)
    token = csrf_from(auth.client.get("/alerts/settings").get_data(as_text=True))
    response = auth.client.post("/alerts/settings/quiet", data={"quiet_from": "22:00", "quiet_until": "",
                                                                "csrf_token": token})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="quiet_until-error">Give both times, or leave both empty' in html
    response = auth.client.post("/alerts/settings/quiet", data={"quiet_from": "25:00", "quiet_until": "07:00",
                                                                "csrf_token": token})
    assert 'id="quiet_from-error">Enter a time like 22:00.' in response.get_data(as_text=True)
    assert _membership(home.member, home).quiet_from is None


def test_send_me_a_test_on_each_channel(app, home, smtp_server):
    auth = _login(app, home.member)
    token = csrf_from(auth.client.get("/alerts/settings").get_data(as_text=True))
    for channel in ("portal", "email", "push"):
        auth.client.post("/alerts/test", data={"channel": channel, "csrf_token": token})
    drain(app)
    page = auth.client.get("/alerts/").get_data(as_text=True)
    assert "This is a test alert" in page
    assert "Turn on alerts on this device first" in page  # push: no browser subscribed
    [message] = smtp_server.to("member@example.com")
    assert "This is a test alert" in message["Subject"] and message["List-Unsubscribe"] is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.channel == "push")) == 0


def test_a_member_joining_and_a_support_visit_reach_the_owner(app, home):
    owner = _membership(home.owner, home)
    made = members.invite(owner, home.owner, "guest@example.com", lambda token: f"http://portal.test/join/{token}")
    user = accounts.register_user("guest@example.com", "guest has a passphrase")
    members.accept_invite(made.link.rsplit("/", 1)[1], user)
    staff = accounts.register_user("staff@example.com", "staff has a passphrase")
    activity.record(home.account.id, kind="support.viewed", summary="Viewed your household in the support console.",
                    actor_kind="support", actor_user=staff, actor_label="IoTLock support (Sam)")
    db.session.commit()
    kinds = [k for k, c in _notifications(home.owner) if c == "portal"]
    assert kinds == ["member_joined", "support_visit"]
    # Their own joining is not news to them; the visit is.
    assert [k for k, c in _notifications(user) if c == "portal"] == ["support_visit"]

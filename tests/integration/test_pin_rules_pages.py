"""The pages of issue 12: the add-PIN form with its kinds (every bad rule answered on its
field, nothing saved), its preview in words, the household's time zone, delivery codes
with the carrier's text, "Parcel waiting" on the box page and the dashboard, safe mode's
form, and giving a PIN to someone else."""
import re
import zoneinfo
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Account, Mailbox, Pin, utcnow
from portal.streamiot import messages
from tests.plugins.accounts import PASSWORD, csrf_from
from tests.plugins.text import visible_text


def _post(client, url, data, page_url):
    token = csrf_from(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def _field_error(html: str, field_id: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    return found.group(1) if found else ""


def _pin_count(mailbox) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Pin).where(Pin.mailbox_id == mailbox.id))


def _windows(count: int) -> dict:
    data: dict = {}
    for i in range(count):
        data[f"w-{i}-days"] = ["0"]
        data[f"w-{i}-from"] = f"{i % 24:02d}:00"
        data[f"w-{i}-until"] = f"{i % 24:02d}:30"
    return data


BAD_RULES = [
    pytest.param({"kind": "range", "starts": "2031-05-02T10:00", "ends": "2031-05-01T10:00"}, "ends",
                 "after", id="end-before-start"),
    pytest.param({"kind": "weekly", "w-0-from": "08:00", "w-0-until": "18:00"}, "windows", "day",
                 id="window-without-days"),
    pytest.param({"kind": "weekly", "w-0-days": ["0"], "w-0-from": "18:00", "w-0-until": "08:00"}, "windows", "",
                 id="window-ending-before-it-starts"),
    pytest.param({"kind": "weekly", **_windows(17)}, "windows", "16", id="seventeen-windows"),
    pytest.param({"kind": "uses", "uses": "0"}, "uses", "at least once", id="zero-uses"),
    pytest.param({"kind": "uses", "uses": "1001"}, "uses", "1000", id="too-many-uses"),
    pytest.param({"kind": "uses", "uses": "three"}, "uses", "", id="uses-not-a-number"),
]


@pytest.mark.parametrize(("rules", "field", "words"), BAD_RULES)
def test_each_bad_rule_is_answered_on_its_field_and_nothing_is_saved(kit, member_client, rules, field, words):
    _gateway, mailbox = kit.ready_mailbox()
    page = f"/mailboxes/{mailbox.id}"
    response = _post(member_client, f"/mailboxes/{mailbox.id}/pins",
                     {"label": "Cleaner", "digits": "5827", **rules}, page)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    message = _field_error(html, field)
    assert message, f"no error on {field}: {visible_text(html)[:600]}"
    assert words.lower() in message.lower()
    assert "5827" not in visible_text(html)
    assert _pin_count(mailbox) == 0


def test_a_duress_pin_equal_to_another_pin_is_refused_on_the_digits(kit, member_client, household):
    user, _account = household
    gateway = kit.add_gateway(protocol="sealed")
    _gw, mailbox = kit.ready_mailbox(gateway=gateway)
    kit.add_pin(mailbox, "Grandma", "5827")
    response = _post(member_client, f"/mailboxes/{mailbox.id}/pins",
                     {"label": "Duress", "digits": "5827", "duress": "y", "assigned_to": str(user.id)},
                     f"/mailboxes/{mailbox.id}")
    assert "duress" in _field_error(response.get_data(as_text=True), "digits").lower()
    assert _pin_count(mailbox) == 1


def test_a_weekly_pin_is_saved_with_its_windows_and_shown_in_words(kit, member_client):
    _gateway, mailbox = kit.ready_mailbox()
    response = _post(member_client, f"/mailboxes/{mailbox.id}/pins", {
        "label": "Cleaner", "digits": "5827", "kind": "weekly",
        "w-0-days": ["0", "1", "2", "3", "4"], "w-0-from": "08:00", "w-0-until": "12:00",
        "w-1-days": ["0", "1", "2", "3", "4"], "w-1-from": "14:00", "w-1-until": "00:00",
        # typed before the kind changed: not sent for a weekly PIN
        "uses": "7",
    }, f"/mailboxes/{mailbox.id}")
    assert response.status_code == 303, visible_text(response.get_data(as_text=True))[:800]
    pin = db.session.scalars(sa.select(Pin).where(Pin.mailbox_id == mailbox.id)).one()
    assert pin.windows == [{"days": "1111100", "from": "08:00", "until": "12:00"},
                           {"days": "1111100", "from": "14:00", "until": "24:00"}]
    assert pin.max_uses is None
    text = visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))
    assert "08:00" in text and "14:00" in text and "Mon" in text


def test_the_preview_says_the_rules_in_words_or_what_is_wrong(kit, member_client):
    _gateway, mailbox = kit.ready_mailbox()
    page = f"/mailboxes/{mailbox.id}"
    ok = _post(member_client, f"/mailboxes/{mailbox.id}/pins/preview", {"kind": "uses", "uses": "3"}, page)
    assert ok.status_code == 200
    assert "3" in visible_text(ok.get_data(as_text=True)) and "invalid" not in ok.get_data(as_text=True)
    bad = _post(member_client, f"/mailboxes/{mailbox.id}/pins/preview", {"kind": "uses", "uses": "0"}, page)
    assert 'class="pin-preview invalid"' in bad.get_data(as_text=True)


def test_the_household_time_zone_is_changed_on_its_field(member_client, household):
    _user, account = household
    bad = _post(member_client, "/settings/household/time-zone", {"tz-time_zone": "Mars/Olympus_Mons"}, "/settings")
    assert bad.status_code in (200, 422)
    assert _field_error(bad.get_data(as_text=True), "tz-time_zone")
    assert db.session.get(Account, account.id).time_zone == "UTC"
    good = _post(member_client, "/settings/household/time-zone", {"tz-time_zone": "Europe/Berlin"}, "/settings")
    assert good.status_code == 302
    db.session.expire_all()
    assert db.session.get(Account, account.id).time_zone == "Europe/Berlin"
    assert "Europe/Berlin" in visible_text(member_client.get("/settings").get_data(as_text=True))


def test_registration_keeps_the_browser_time_zone_and_falls_back_to_utc(app):
    client = app.test_client()
    token = csrf_from(client.get("/register").get_data(as_text=True))
    client.post("/register", data={"csrf_token": token, "email": "zone@example.com", "password": PASSWORD,
                                   "household_name": "Zone House", "time_zone": "America/New_York"})
    other = app.test_client()
    token = csrf_from(other.get("/register").get_data(as_text=True))
    other.post("/register", data={"csrf_token": token, "email": "nozone@example.com", "password": PASSWORD,
                                  "household_name": "No Zone", "time_zone": "Nowhere/Special"})
    zones = dict(db.session.execute(sa.select(Account.name, Account.time_zone)).all())
    assert zones["Zone House"] == "America/New_York"
    assert zones["No Zone"] == "UTC"


def test_a_delivery_code_is_shown_once_with_a_text_for_the_courier(kit, member_client):
    _gateway, mailbox = kit.ready_mailbox(name="Parcel box")
    page = f"/mailboxes/{mailbox.id}/delivery-code"
    response = _post(member_client, page, {"label": "DHL"}, page)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    digits = re.search(r'id="delivery-digits"[^>]*>(\d+)<', html).group(1)
    text = visible_text(html)
    assert f"Type {digits}" in text or digits in re.search(r'id="carrier-text">([^<]*)<', html).group(1)
    pin = db.session.scalars(sa.select(Pin).where(Pin.mailbox_id == mailbox.id)).one()
    assert (pin.purpose, pin.max_uses, pin.label) == ("courier", 1, "DHL")
    assert pin.ends_at is not None
    # The box page never shows the digits again without the password.
    assert digits not in visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))


def test_a_gun_safe_takes_no_delivery_codes(kit, member_client):
    gateway = kit.add_gateway(protocol="sealed")
    mailbox = kit.add_mailbox(gateway, name="Safe", kind="gun_safe")
    page = f"/mailboxes/{mailbox.id}/delivery-code"
    response = _post(member_client, page, {"label": "DHL"}, page)
    assert response.status_code == 422
    assert _pin_count(mailbox) == 0
    assert "New delivery code" not in visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))


def test_parcel_waiting_shows_on_the_box_page_and_the_dashboard_until_collected(kit, member_client):
    gateway, mailbox = kit.ready_mailbox(name="Parcel box")
    page = f"/mailboxes/{mailbox.id}/delivery-code"
    html = _post(member_client, page, {"label": "DHL"}, page).get_data(as_text=True)
    digits = int(re.search(r'id="delivery-digits"[^>]*>(\d+)<', html).group(1))
    kit.drain()
    kit.confirm_all(gateway)
    kit.add_pin(mailbox, "Grandma", "4821")
    device = kit.device(gateway)
    device.publish(messages.opened_with_pin(gateway.thing_id, digits), mailbox.channel_id)
    kit.poll()
    device.publish(messages.closed(gateway.thing_id), mailbox.channel_id)
    kit.poll()
    assert "Parcel waiting since" in visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))
    assert "Parcel waiting since" in visible_text(member_client.get("/gateways/").get_data(as_text=True))
    device.publish(messages.opened_with_pin(gateway.thing_id, 4821), mailbox.channel_id)
    kit.poll()
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).parcel_since is None
    box = visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))
    assert "Parcel waiting" not in box and "collected" in box.lower()


def test_safe_mode_refuses_bad_settings_on_their_fields(kit, member_client):
    gateway = kit.add_gateway(protocol="sealed")
    _gw, mailbox = kit.ready_mailbox(gateway=gateway)
    page = f"/mailboxes/{mailbox.id}"
    few = _post(member_client, f"/mailboxes/{mailbox.id}/safe-mode",
                {"enabled": "y", "attempts": "1", "lockouts": "1, 5"}, page)
    assert _field_error(few.get_data(as_text=True), "attempts")
    shrinking = _post(member_client, f"/mailboxes/{mailbox.id}/safe-mode",
                      {"enabled": "y", "attempts": "5", "lockouts": "15, 5"}, page)
    assert _field_error(shrinking.get_data(as_text=True), "lockouts")
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).safe_settings is None
    saved = _post(member_client, f"/mailboxes/{mailbox.id}/safe-mode",
                  {"enabled": "y", "attempts": "5", "lockouts": "1, 5, 15", "dual": "y"}, page)
    assert saved.status_code == 303
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).safe_settings["lockouts"] == [60, 300, 900]
    assert "1, 5, 15 minutes" in visible_text(member_client.get(page).get_data(as_text=True))


def test_a_pin_is_given_to_a_member_and_back(kit, member_client, household):
    user, _account = household
    _gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    response = _post(member_client, f"/mailboxes/pins/{pin.id}/owner", {"assigned_to": str(user.id)},
                     f"/mailboxes/{mailbox.id}")
    assert response.status_code == 303
    assert kit.reload(pin).assigned_to_id == user.id
    assert "belongs to" in visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))


def test_a_lockout_shows_until_when_in_the_household_zone(kit, member_client, household):
    _user, account = household
    db.session.get(Account, account.id).time_zone = "Asia/Kolkata"
    db.session.commit()
    gateway, mailbox = kit.ready_mailbox()
    until = (utcnow() + timedelta(minutes=5)).replace(microsecond=0)
    kit.device(gateway).publish(messages.locked_out(gateway.thing_id, int(until.timestamp())), mailbox.channel_id)
    kit.poll()
    text = visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))
    local = until.astimezone(zoneinfo.ZoneInfo("Asia/Kolkata")).strftime("%H:%M")
    assert f"Keypad locked out until {local}" in text

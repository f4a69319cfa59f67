"""Keys that die with access: a gateway's settings (they hold its StreamIoT key) are for
owners only, behind the password typed for each download, and recorded; when someone who
downloaded them leaves, the owners are told; "Replace keys" gives the gateway a new thing
and deletes the old one, after which the old key publishes and reads nothing, while the
gateway (its virtual gateway, or the test kit's device) keeps working."""
import importlib.util
import json
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs import virtual_gateways as manager
from portal.jobs.context import set_streamiot
from portal.models import ROLE_OWNER, ActivityEvent, Gateway, GatewayKeyHolder, LoginSession, Membership, utcnow
from portal.services import gateway_keys, gateways, members
from portal.services.errors import Conflict
from portal.streamiot import errors as sie
from portal.streamiot import messages
from portal.streamiot.client import StreamIoT
from portal.streamiot.deployment import client_from_config
from tests.plugins.accounts import PASSWORD, Auth, csrf_from


def _login(app, email) -> Auth:
    auth = Auth(app.test_client())
    assert auth.login(email, PASSWORD).status_code == 302
    return auth


def _download(client, gateway_id, password=PASSWORD):
    page = client.get(f"/gateways/{gateway_id}/settings").get_data(as_text=True)
    token = csrf_from(page) if 'name="csrf_token"' in page else csrf_from(client.get("/settings").get_data(as_text=True))
    return client.post(f"/gateways/{gateway_id}/settings/download", data={"csrf_token": token, "password": password})


def _membership(account, user) -> Membership:
    return db.session.scalars(
        sa.select(Membership).where(Membership.account_id == account.id, Membership.user_id == user.id)
    ).one()


def _start(kit, gateway):
    """An owner presses "Replace keys" (the password checked a moment ago)."""
    login = LoginSession(user_id=kit.user.id, token_hash=uuid.uuid4().hex * 2, reauthenticated_at=utcnow())
    db.session.add(login)
    db.session.commit()
    return gateway_keys.start_replacement(_membership(kit.account, kit.user), kit.user, login, gateway.id, None)


def _holders(gateway):
    db.session.expire_all()
    return db.session.scalars(
        sa.select(GatewayKeyHolder).where(GatewayKeyHolder.gateway_id == gateway.id).order_by(GatewayKeyHolder.email)
    ).all()


def _replace(app, auth: Auth, gateway_id, password=PASSWORD):
    page = auth.client.get(f"/gateways/{gateway_id}/replace-keys").get_data(as_text=True)
    return auth.client.post(f"/gateways/{gateway_id}/replace-keys",
                            data={"csrf_token": csrf_from(page), "password": password})


def _things_of(kit) -> list[dict]:
    """Every thing of the household's StreamIoT user, as its owner (or an attacker with
    its login) would list them."""
    api = kit.user_api()
    found, offset = [], 0
    while True:
        page = api.list_things(offset=offset, limit=100)
        found += page["things"]
        offset += len(page["things"])
        if not page["things"] or offset >= page["total"]:
            return found


# --- the settings download -------------------------------------------------------------------

def test_members_who_are_not_owners_read_why_and_cannot_download(app, kit, add_member):
    gateway = kit.add_gateway("Hallway")
    member, _ = add_member(kit.account, "plain@example.com")
    auth = _login(app, member.email)

    page = auth.client.get(f"/gateways/{gateway.id}/settings")
    html = page.get_data(as_text=True)
    assert page.status_code == 403
    assert "Only the household’s owners can download a gateway’s settings" in html
    assert "Your password" not in html and "Download settings file" not in html

    # Straight POST, with the right password: refused all the same.
    direct = auth.client.post(f"/gateways/{gateway.id}/settings/download",
                              data={"csrf_token": auth.csrf("/settings"), "password": PASSWORD})
    assert direct.status_code == 403 and direct.mimetype != "application/json"
    assert _holders(gateway) == []
    assert not db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == "gateway.settings_viewed")).all()
    # The gateway page offers members neither the keys nor their replacement.
    assert "Replace keys" not in auth.client.get(f"/gateways/{gateway.id}").get_data(as_text=True)


def test_each_download_needs_the_password_and_is_recorded_as_a_key_holder(app, kit, member_client):
    gateway = kit.add_gateway("Hallway")
    first = _download(member_client, gateway.id)
    assert first.mimetype == "application/json"
    without = member_client.post(f"/gateways/{gateway.id}/settings/download",
                                 data={"csrf_token": csrf_from(member_client.get("/settings").get_data(as_text=True))})
    assert without.mimetype == "text/html" and "Enter your password" in without.get_data(as_text=True)
    second = _download(member_client, gateway.id)
    assert second.mimetype == "application/json"

    [holder] = _holders(gateway)
    assert (holder.user_id, holder.email, holder.departed_at) == (kit.user.id, kit.user.email, None)
    assert holder.first_downloaded_at < holder.last_downloaded_at
    summaries = db.session.scalars(
        sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "gateway.settings_viewed")
    ).all()
    # The first download carried the private key IoTLock made for this owner, once.
    assert summaries == ["Downloaded the settings of gateway “Hallway” with its private key",
                         "Downloaded the settings of gateway “Hallway”"]


# --- someone who had the keys leaves ---------------------------------------------------------

def test_owners_see_who_left_with_a_gateways_keys_and_plain_members_do_not(app, kit, add_member, member_client):
    gateway = kit.add_gateway("Hallway")
    other = kit.add_gateway("Garage")
    bob, bob_membership = add_member(kit.account, "bob@example.com", role=ROLE_OWNER)
    dora, dora_membership = add_member(kit.account, "dora@example.com", role=ROLE_OWNER)
    carol, _ = add_member(kit.account, "carol@example.com")
    assert _download(_login(app, bob.email).client, gateway.id).mimetype == "application/json"
    assert _download(_login(app, dora.email).client, gateway.id).mimetype == "application/json"

    notice = "bob@example.com had this gateway’s keys."
    assert notice not in member_client.get("/gateways/").get_data(as_text=True)

    members.remove_member(_membership(kit.account, kit.user), kit.user, bob_membership.id)
    members.leave(db.session.get(Membership, dora_membership.id), dora)

    both = "bob@example.com, dora@example.com had this gateway’s keys."
    board = member_client.get("/gateways/").get_data(as_text=True)
    assert board.count("had this gateway’s keys") == 1 and both in board
    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert both in page and f"/gateways/{gateway.id}/replace-keys" in page
    assert "had this gateway’s keys" not in member_client.get(f"/gateways/{other.id}").get_data(as_text=True)

    plain = _login(app, carol.email).client
    assert "had this gateway’s keys" not in plain.get("/gateways/").get_data(as_text=True)
    assert "had this gateway’s keys" not in plain.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert [h.departed_at is not None for h in _holders(gateway)] == [True, True]


# --- replacing the keys ----------------------------------------------------------------------

def test_replace_keys_asks_for_the_password_and_is_for_owners(app, kit, add_member):
    gateway = kit.add_gateway("Hallway")
    owner = _login(app, kit.user.email)
    # A login older than the re-authentication window: the password is asked.
    db.session.execute(sa.text("UPDATE login_sessions SET reauthenticated_at = NULL"))
    db.session.commit()
    wrong = _replace(app, owner, gateway.id, "not it at all")
    assert wrong.status_code == 200 and "That is not your password" in wrong.get_data(as_text=True)
    assert kit.reload(gateway).key_state == "current"
    right = _replace(app, owner, gateway.id)
    assert right.status_code == 303
    assert kit.reload(gateway).key_state == "replacing"

    member, _ = add_member(kit.account, "plain@example.com")
    plain = _login(app, member.email)
    assert plain.client.get(f"/gateways/{gateway.id}/replace-keys").status_code == 403


def test_after_replacing_the_keys_the_old_key_is_dead_and_the_gateway_keeps_working(app, kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    old_thing, old_key = gateway.thing_id, kit.device(gateway).key
    stolen = json.loads(_download(member_client, gateway.id).get_data(as_text=True))
    assert stolen["thing_key"] == old_key
    box_channel = mailbox.channel_id

    assert _replace(app, Auth(member_client), gateway.id).status_code == 303
    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert "Replacing the keys" in page and "Make new device keys for the gateway" in page
    kit.drain()

    gateway = kit.reload(gateway)
    assert gateway.key_state == "current" and gateway.thing_id != old_thing
    assert gateway.key_progress["rekey_sent"] == gateway.key_progress["rekey_confirmed"] == "skipped"
    assert all(gateway.key_progress[k] is True for k in ("new_thing", "connect", "switch", "old_deleted"))
    assert (gateway.new_thing_id, gateway.old_thing_id) == (None, None)
    assert _holders(gateway) == []

    # The attacker's copy: publishing and reading, on the gateway's and the box's channels.
    attacker = client_from_config(app.config)
    for channel in (stolen["channel_id"], box_channel):
        with pytest.raises(sie.ServerError):
            attacker.publish(channel, stolen["thing_key"], messages.heartbeat(old_thing, 1))
        with pytest.raises(sie.ServerError):
            attacker.read_messages(channel, thing_key=stolen["thing_key"])

    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert "Load the new settings onto the gateway; until then it can’t reach IoTLock." in page
    # The device, loaded with the new settings, hears a PIN added after the swap and confirms it.
    new_settings = json.loads(_download(member_client, gateway.id).get_data(as_text=True))
    assert new_settings["thing_id"] == gateway.thing_id and new_settings["thing_key"] != old_key
    device = kit.device(gateway)
    device.heartbeat()
    pin = kit.add_pin(mailbox, label="After", digits="7364")
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "active"
    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert "Load the new settings" not in page
    events = db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind.like("gateway.keys_%"))).all()
    assert events == ["Started replacing the keys of gateway “Hallway”",
                      "Replaced the keys of gateway “Hallway”; the old keys no longer work"]


def test_the_departed_notice_goes_once_the_keys_are_replaced(app, kit, add_member, member_client):
    gateway = kit.add_gateway("Hallway")
    bob, bob_membership = add_member(kit.account, "bob@example.com", role=ROLE_OWNER)
    _download(_login(app, bob.email).client, gateway.id)
    _download(member_client, gateway.id)
    members.remove_member(_membership(kit.account, kit.user), kit.user, bob_membership.id)
    assert "bob@example.com had this gateway’s keys." in member_client.get("/gateways/").get_data(as_text=True)

    _start(kit, gateway)
    kit.drain()
    assert "had this gateway’s keys" not in member_client.get("/gateways/").get_data(as_text=True)
    assert "had this gateway’s keys" not in member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert _holders(gateway) == []
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    with pytest.raises(Conflict):  # nothing to replace while it is being removed
        _start(kit, gateway)


class _ConnectFails(requests.adapters.BaseAdapter):
    """The platform answers POST /connect with a 500 while `failing`; the rest goes through. (An
    EMPTY 500 would count as the platform being down: health holds jobs without spending attempts.)"""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.failing = inner, True

    def send(self, request, *args, **kwargs):
        if self.failing and request.method == "POST" and request.url.endswith("/connect"):
            response = requests.Response()
            response.status_code = 500
            response._content = b'{"error":"internal server error"}'
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
            response.request, response.url = request, request.url
            return response
        return self.inner.send(request, *args, **kwargs)

    def close(self):
        self.inner.close()


@pytest.fixture
def app_overrides():
    return {"JOB_MAX_ATTEMPTS": 2}


def test_a_step_failing_midway_stops_visibly_and_resumes_without_orphans(app, kit, member_client):
    gateway, _mailbox = kit.ready_mailbox()
    old_thing = gateway.thing_id
    before = {t["id"] for t in _things_of(kit)}

    base = client_from_config(app.config)
    failing = _ConnectFails(base.session.get_adapter(base.base_url + "/"))
    session = requests.Session()
    session.mount(base.base_url + "/", failing)
    set_streamiot(app, StreamIoT(base.base_url, base.reader_url, session=session))
    try:
        _start(kit, gateway)
        kit.drain()
        gateway = kit.reload(gateway)
        assert gateway.key_state == "failed" and gateway.thing_id == old_thing
        assert gateway.key_progress.get("new_thing") and not gateway.key_progress.get("connect")
        new_thing = gateway.new_thing_id
        assert new_thing and new_thing in {t["id"] for t in _things_of(kit)}
        page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
        assert "Replacing the keys" in page and "Stopped" in page and "(stopped here)" in page
        assert "Try again" in page
        assert any("Replacing the keys of gateway" in s for s in db.session.scalars(
            sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "delivery.failed")))
    finally:
        set_streamiot(app, client_from_config(app.config))

    # Try again (password window still fresh from the login): resumes at "connect", same new thing.
    response = _replace(app, Auth(member_client), gateway.id)
    assert response.status_code == 303
    kit.drain()
    gateway = kit.reload(gateway)
    assert gateway.key_state == "current" and gateway.thing_id == new_thing
    after = {t["id"] for t in _things_of(kit)}
    assert after == (before - {old_thing}) | {new_thing}, "no thing left behind, the old one gone"


def test_removing_a_gateway_whose_key_replacement_stopped_leaves_no_thing(app, kit):
    gateway = kit.add_gateway()
    gateway_id, thing_id = gateway.id, gateway.thing_id
    before = {t["id"] for t in _things_of(kit)}
    _start(kit, gateway)
    db.session.execute(sa.update(Gateway).where(Gateway.id == gateway.id).values(
        key_progress={"attempt": "abc", "new_thing": True}))
    api = kit.user_api()
    orphan = api.create_thing(f"{gateway.thing_name}-keys-abc")
    db.session.execute(sa.update(Gateway).where(Gateway.id == gateway.id).values(new_thing_id=orphan))
    db.session.commit()
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    kit.drain()
    assert {t["id"] for t in _things_of(kit)} == before - {thing_id}
    assert db.session.get(Gateway, gateway_id) is None


# --- the virtual gateway follows the new keys ------------------------------------------------

@pytest.mark.parametrize("app_overrides", [{"VIRTUAL_GATEWAYS": True}])
def test_the_virtual_gateway_follows_the_new_keys_and_keeps_its_boxes_and_pins(app, kit, app_overrides):
    gateway = kit.add_gateway("Porch")
    mailbox = kit.add_mailbox(gateway)
    for _ in range(3):
        manager.tick(app)
        kit.poll()
        kit.drain()
    first = kit.add_pin(mailbox, label="Before", digits="4821")
    manager.tick(app)
    kit.poll()
    assert kit.reload(first).status == "active"
    old_thing = kit.reload(gateway).thing_id

    _start(kit, gateway)
    kit.drain()
    gateway = kit.reload(gateway)
    assert gateway.thing_id != old_thing and gateway.key_state == "current"

    second = kit.add_pin(mailbox, label="After", digits="7364")
    for _ in range(3):
        manager.tick(app)
        kit.poll()
    assert kit.reload(second).status == "active"
    virtual = manager.virtual_gateway_for(app, gateway)
    assert virtual.thing_id == gateway.thing_id
    assert virtual.snapshot()["mailboxes"][0]["pins"] == 2
    assert virtual.keypad(mailbox.public_key, "4821") == "opened"


# --- downloads made before key holders were recorded ----------------------------------------------

def _migration():
    path = Path(__file__).resolve().parents[2] / "migrations" / "versions" / "6b2e4f8a1c37_gateway_keys.py"
    spec = importlib.util.spec_from_file_location("gateway_keys_migration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_makes_key_holders_of_earlier_downloads_and_marks_who_left(app, kit, add_member):
    gateway = kit.add_gateway("Hallway")
    stayed, _ = add_member(kit.account, "stayed@example.com")
    left, left_membership = add_member(kit.account, "left@example.com")
    for user in (stayed, left, left):
        db.session.add(ActivityEvent(account_id=kit.account.id, actor_kind="member", actor_user_id=user.id,
                                     actor_label=user.email, kind="gateway.settings_viewed",
                                     summary="Downloaded the settings of gateway “Hallway”", gateway_id=gateway.id))
        db.session.commit()
    db.session.delete(db.session.get(Membership, left_membership.id))
    db.session.commit()

    _migration().backfill_key_holders(db.session.connection())
    db.session.commit()

    found = {h.email: h for h in _holders(gateway)}
    assert set(found) == {"stayed@example.com", "left@example.com"}
    assert found["stayed@example.com"].departed_at is None
    assert found["left@example.com"].departed_at is not None
    assert found["left@example.com"].first_downloaded_at < found["left@example.com"].last_downloaded_at
    assert gateway_keys.departed_holders(kit.account.id) == {gateway.id: ["left@example.com"]}

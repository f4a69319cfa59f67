"""The dashboard's part is drawn once while its version holds (portal/htmx.py DrawnParts): the
page asked again with nothing changed takes the part as drawn, without reading its rows; any
change, the clock turning its words or a flash draws it anew; each person and session gets
their own, with the asking session's CSRF tokens."""
import re
from datetime import timedelta

from portal.extensions import db
from portal.htmx import Drawn, DrawnParts
from portal.models import GatewayKeyHolder, utcnow
from portal.services import versions
from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.queries import statements_of
from tests.plugins.text import visible_text

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


def _statements(client, path) -> tuple[int, str]:
    count, response = statements_of(client, path)
    assert response.status_code == 200
    return count, response.get_data(as_text=True)


def _tokens(html) -> set[str]:
    return {a or b for a, b in TOKEN.findall(html)}


def test_the_dashboard_asked_again_unchanged_reads_none_of_its_rows_and_reads_the_same(kit, member_client,
                                                                                       settled):
    drawn, first = _statements(member_client, "/gateways/")
    kept, again = _statements(member_client, "/gateways/")
    assert kept < drawn
    assert kept == 1, kept  # who is asking, read with the household's count and the bell (visitors.AtStart)
    assert visible_text(again) == visible_text(first) and "Front box" in visible_text(again)


def test_any_change_draws_the_dashboard_anew(kit, member_client, settled, time_machine):
    gateway, mailbox = settled
    member_client.get("/gateways/")
    kit.add_pin(mailbox, "Grandma", "4821")
    assert "1 change on the way" in visible_text(member_client.get("/gateways/").get_data(as_text=True))
    kit.confirm_all(gateway)
    assert "All delivered" in visible_text(member_client.get("/gateways/").get_data(as_text=True))
    seen = member_client.get("/gateways/").get_data(as_text=True)
    time_machine.move_to(utcnow() + timedelta(minutes=5), tick=False)  # "heard from 5 minutes ago": offline
    later = visible_text(member_client.get("/gateways/").get_data(as_text=True))
    assert "Offline" in later and later != visible_text(seen)


def test_a_kept_part_carries_the_asking_session_s_csrf_tokens_and_its_forms_work(app, kit, member_client, settled):
    _gateway, mailbox = settled
    drawn, first = _statements(member_client, "/gateways/")
    other = app.test_client()  # the same person, signed in on a second phone
    assert Auth(other).login(kit.user.email, PASSWORD).status_code == 302
    kept, html = _statements(other, "/gateways/")
    assert kept < drawn - 4, (kept, drawn)  # the part as the first session drew it
    assert len(_tokens(html)) == 1 and _tokens(html) != _tokens(first)
    assert "\x00" not in html
    [token] = _tokens(html)
    opened = other.post(f"/mailboxes/{mailbox.id}/unlock", data={"csrf_token": token})
    assert opened.status_code in (302, 303) and "/login" not in opened.headers["Location"]
    refused = other.post(f"/mailboxes/{mailbox.id}/unlock", data={"csrf_token": _tokens(first).pop()})
    assert refused.status_code == 400  # the first session's token is not this session's


def test_an_owner_s_kept_part_is_never_a_member_s(app, kit, member_client, settled, add_member):
    gateway, _mailbox = settled
    member, _membership = add_member(kit.account, "kim@example.com")
    db.session.add(GatewayKeyHolder(account_id=kit.account.id, gateway_id=gateway.id, user_id=None,
                                    email="gone@example.com", departed_at=utcnow()))
    db.session.commit()
    assert "gone@example.com" in visible_text(member_client.get("/gateways/").get_data(as_text=True))
    as_member = app.test_client()
    assert Auth(as_member).login(member.email, PASSWORD).status_code == 302
    assert "gone@example.com" not in visible_text(as_member.get("/gateways/").get_data(as_text=True))


def test_a_flash_is_drawn_once_and_never_kept(kit, member_client, settled):
    member_client.get("/gateways/")
    with member_client.session_transaction() as session:
        session["_flashes"] = [("info", "Open sent.")]
    assert "Open sent." in member_client.get("/gateways/").get_data(as_text=True)
    assert "Open sent." not in member_client.get("/gateways/").get_data(as_text=True)


def test_the_parts_kept_are_bounded_least_recently_used_out(app, kit, settled):
    mark = versions.mark(kit.account.id)
    until = int(utcnow().timestamp()) + 60
    parts = DrawnParts(2)
    made = {name: versions.Part(name) for name in "abc"}
    with app.test_request_context():
        for name, part in made.items():
            if name == "c":
                assert parts.get(made["a"], 1, mark) is not None  # a used again: b is the oldest
            parts.put(part, 1, Drawn(f"<p>{name}</p>", versions.version(part, mark, until), {}))
        assert [parts.get(made[n], 1, mark) is not None for n in "abc"] == [True, False, True]
        assert parts.get(made["a"], 2, mark) is None  # another person
        parts.put(made["b"], 1, Drawn("<p>b</p>", None, {}))  # no version: never kept
        assert parts.get(made["b"], 1, mark) is None

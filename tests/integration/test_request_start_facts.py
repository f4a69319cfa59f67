"""What a reading request begins with (portal/services/visitors.py AtStart): who is asking is
read with each household's count and StreamIoT's state (versions.Mark) and the member's
unread alerts, in one statement. So a kept dashboard, a poll answered 304 and the bell's
poll cost that one statement (test_query_counts.py counts the 304s). A request that changes something reads them
again: what it shows after its change is never the snapshot."""
from unittest import mock

import pytest

from portal.crypto import sha256_hex
from portal.extensions import db
from portal.models import Alert, HouseholdChanges, Notification
from portal.services import alerts, versions, visitors
from tests.plugins.accounts import Auth
from tests.plugins.queries import statements_of

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}


def _alert(account, user, summary="Front box: opened") -> None:
    alert = Alert(account_id=account.id, kind="opened", summary=summary)
    db.session.add(alert)
    db.session.flush()
    db.session.add(Notification(account_id=account.id, alert_id=alert.id, user_id=user.id, channel="portal",
                                state="sent"))
    db.session.commit()


def _token(client) -> str:
    with client.session_transaction() as session:
        return session["_user_id"]


@pytest.mark.parametrize("path, headers", [
    ("/gateways/", {}),  # the dashboard, its part kept (portal/htmx.py DrawnParts)
    ("/alerts/bell", {**POLL, "If-None-Match": "\"bell-9-0\""}),  # the bell's poll (of another count): drawn
])
def test_a_kept_dashboard_and_the_bell_s_poll_cost_one_statement(member_client, settled, path, headers):
    member_client.get(path, headers=headers)  # draws (and keeps) what it can
    count, response = statements_of(member_client, path, headers=headers)
    assert response.status_code == 200
    assert count == 1, (path, count)


def test_the_bell_and_the_dashboard_show_what_arrived_since_the_last_request(kit, household, member_client,
                                                                              settled):
    user, account = household
    bell = member_client.get("/alerts/bell", headers=POLL)
    assert "unread" not in bell.get_data(as_text=True)
    member_client.get("/gateways/")
    _alert(account, user)
    _alert(account, user, "Front box: closed")
    assert "Alerts: 2 unread" in member_client.get("/alerts/bell", headers=POLL).get_data(as_text=True)
    assert "Alerts: 2 unread" in member_client.get("/gateways/").get_data(as_text=True)
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821")
    assert "Grandma" in member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert "1 change on the way" in member_client.get("/gateways/").get_data(as_text=True)


def test_only_a_reading_request_takes_the_snapshot(household, member_client, settled):
    """auth.py asks with reading=True for GET and HEAD alone; without it there is no
    snapshot, so the bell and the count are read when they are asked for."""
    user, account = household
    _alert(account, user)
    token = _token(member_client)
    reading = visitors.who_is_asking(token, sha256_hex(token), reading=True)
    changing = visitors.who_is_asking(token, sha256_hex(token))
    assert reading is not None and changing is not None
    [snapshot], [fresh] = reading.memberships, changing.memberships
    assert snapshot.at_start == visitors.AtStart(versions.mark(account.id), 1)
    assert fresh.at_start is None
    assert (snapshot.id, snapshot.account) == (fresh.id, fresh.account)
    _alert(account, user, "Front box: closed")
    assert alerts.unread_count(snapshot) == 1  # as the request began
    assert alerts.unread_count(fresh) == 2  # counted now


def test_a_household_with_no_count_yet_has_no_mark(household, member_client, settled):
    """No count row: no mark, so every part is drawn (versions.mark's None)."""
    user, account = household
    db.session.execute(db.delete(HouseholdChanges).where(HouseholdChanges.account_id == account.id))
    db.session.commit()
    token = _token(member_client)
    asking = visitors.who_is_asking(token, sha256_hex(token), reading=True)
    assert asking is not None
    assert asking.memberships[0].at_start == visitors.AtStart(None, 0)
    assert member_client.get("/gateways/").status_code == 200


def test_the_snapshot_is_read_for_pages_and_versioned_polls_only(member_client, settled):
    """A GET of a page shows the bell; a poll with a version needs the mark (the bell's poll:
    its count). An htmx part asked without a version needs neither, and a POST reads them
    after its change: both read the login alone."""
    _gateway, mailbox = settled
    token = Auth(member_client).csrf("/alerts/")
    asked: list[bool] = []
    real = visitors.who_is_asking

    def spy(token, token_hash, reading=False):
        asked.append(reading)
        return real(token, token_hash, reading=reading)

    with mock.patch.object(visitors, "who_is_asking", spy):
        member_client.get("/gateways/")
        member_client.get(f"/mailboxes/{mailbox.id}", headers={**POLL, "If-None-Match": '"1.2.abc"'})
        member_client.get("/alerts/bell", headers={**POLL, "If-None-Match": '"bell-0-0"'})
        member_client.get("/household/link-state", headers=POLL)
        member_client.post("/alerts/read", data={"csrf_token": token})
    assert asked == [True, True, True, False, False]

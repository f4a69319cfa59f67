"""The activity log: recorded with the change, listed newest first with filters and pages,
refreshed by polling, exported as CSV; every household sees only its own."""
import csv
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, Alert, utcnow
from portal.services import activity
from tests.plugins.accounts import PASSWORD, Auth

pytestmark = pytest.mark.rollback

HTMX = {"HX-Request": "true"}


@pytest.fixture
def owner_a(app, world) -> Auth:
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    return auth


def _add(account_id, n, kind="box.opened_pin", mailbox_id=None, start=None, summary="Opened with a PIN."):
    start = start or utcnow() + timedelta(seconds=1)  # after the world's own event
    for i in range(n):
        event = activity.record(account_id, kind=kind, summary=f"{summary} #{i}", actor_kind="box",
                                actor_label="Front mailbox", mailbox_id=mailbox_id)
        event.occurred_at = start + timedelta(seconds=i)
    db.session.commit()


def test_record_adds_an_event_with_the_member_as_actor(app, world):
    event = activity.record(world["account"].id, kind="pin.added", summary="Added a PIN.", actor_user=world["owner"])
    db.session.commit()
    assert event.actor_label == world["owner"].email
    assert event.actor_user_id == world["owner"].id
    assert event.actor_kind == "member"


def test_record_labels_system_events_without_a_user(app, world):
    event = activity.record(world["account"].id, kind="delivery.failed", summary="A change could not be delivered.",
                            actor_kind="system")
    assert event.actor_label == "IoTLock"
    with pytest.raises(ValueError):
        activity.record(world["account"].id, kind="x.y", summary="?", actor_kind="robot")


def test_events_saved_as_rows_are_the_events_record_saves_and_raise_their_alerts(app, world):
    """record_rows (a change that saves its own rows, as add-PIN does) saves what record
    would, in the caller's transaction, and raises the same alerts."""
    account_id, owner = world["account"].id, world["owner"]
    rows = [activity.event_row(account_id, kind="member.joined", summary=f"Joined #{i}", actor_user=owner)
            for i in range(2)]
    activity.record_rows(rows)
    db.session.rollback()  # nothing is saved outside the caller's transaction
    assert not db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.summary.startswith("Joined #"))).all()
    activity.record_rows(rows)
    db.session.commit()
    saved = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.summary.startswith("Joined #"))
                               .order_by(ActivityEvent.id)).all()
    assert [(e.summary, e.actor_label, e.actor_user_id, e.kind) for e in saved] == [
        ("Joined #0", owner.email, owner.id, "member.joined"), ("Joined #1", owner.email, owner.id, "member.joined")]
    assert saved[0].occurred_at == saved[0].recorded_at
    raised = db.session.scalars(sa.select(Alert).where(Alert.account_id == account_id,
                                                       Alert.kind == "member_joined")).all()
    assert len(raised) == 2


def test_events_are_listed_newest_first_and_paged(app, world):
    account_id = world["account"].id
    _add(account_id, 60)
    first = activity.list_events(account_id, page=1, per_page=25)
    assert first.events[0].summary == "Opened with a PIN. #59"
    assert first.has_next and not first.has_prev
    third = activity.list_events(account_id, page=3, per_page=25)
    # 60 new events plus the world's own pin.added event, which is the oldest of all.
    assert [e.summary for e in third.events][-1].startswith("Added the PIN")
    assert not third.has_next and third.has_prev
    assert len(third.events) == 11


def test_filters_by_mailbox_and_by_kind(app, world):
    account_id = world["account"].id
    _add(account_id, 3, mailbox_id=world["mailbox"].id)
    _add(account_id, 2, kind="member.joined", summary="Someone joined.")
    by_mailbox = activity.list_events(account_id, mailbox_id=str(world["mailbox"].id))
    assert {e.mailbox_id for e in by_mailbox.events} == {world["mailbox"].id}
    assert len(by_mailbox.events) == 4  # 3 + the world's pin event
    assert [e.kind for e in activity.list_events(account_id, kind="member").events] == ["member.joined"] * 2
    assert len(activity.list_events(account_id, kind="box.opened_pin").events) == 3
    assert activity.list_events(account_id, mailbox_id="not-a-uuid").events == []


def test_another_households_events_and_mailboxes_stay_hidden(app, world):
    _add(world.b["account"].id, 3, mailbox_id=world.b["mailbox"].id, summary="B's box opened.")
    events = activity.list_events(world["account"].id, mailbox_id=world.b["mailbox"].id).events
    assert events == []
    assert all(not e.summary.startswith("B's") for e in activity.list_events(world["account"].id).events)
    assert world.b["mailbox"].id not in activity.mailbox_names(world["account"].id)


def test_page_shows_events_filters_and_polls_on_the_first_page(owner_a, world):
    _add(world["account"].id, 3, mailbox_id=world["mailbox"].id)
    html = owner_a.client.get("/activity").get_data(as_text=True)
    assert "Opened with a PIN. #2" in html
    main = html[html.index("<main"):]  # (the head has a colour #1f6feb)
    assert main.index("#2") < main.index("#1") < main.index("#0")
    assert 'hx-trigger="every 5s"' in html
    assert '"X-IoTLock-Poll": "1"' in html
    assert f'<option value="{world["mailbox"].id}"' in html
    assert "Download CSV" in html


def test_later_pages_do_not_poll_and_link_back(owner_a, world):
    _add(world["account"].id, 60)
    html = owner_a.client.get("/activity?page=2").get_data(as_text=True)
    assert "every 5s" not in html
    assert 'href="/activity?page=1"' in html
    assert "Page 2" in html


def test_htmx_poll_gets_only_the_feed(owner_a, world):
    _add(world["account"].id, 1, summary="Fresh event")
    response = owner_a.client.get("/activity", headers={**HTMX, "X-IoTLock-Poll": "1"})
    html = response.get_data(as_text=True)
    assert "<html" not in html
    assert html.lstrip().startswith('<section id="activity-feed"')
    assert "Fresh event #0" in html


def test_filtering_on_the_page_keeps_the_filter_in_the_poll_and_csv_links(owner_a, world):
    _add(world["account"].id, 2, kind="member.joined", summary="Joined")
    mailbox = world["mailbox"].id
    html = owner_a.client.get(f"/activity?kind=member&mailbox={mailbox}").get_data(as_text=True)
    assert f"/activity?mailbox={mailbox}&amp;kind=member" in html
    assert f"/activity.csv?mailbox={mailbox}&amp;kind=member" in html
    assert "Nothing matches these filters yet." in html


def test_unknown_filter_values_are_ignored(owner_a, world):
    response = owner_a.client.get("/activity?kind=evil&mailbox=' OR 1=1 --&page=-4")
    assert response.status_code == 200
    assert "Added the PIN" in response.get_data(as_text=True)


def test_another_households_mailbox_filter_shows_nothing_of_it(app, world):
    _add(world.b["account"].id, 2, mailbox_id=world.b["mailbox"].id, summary="B-secret")
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    html = auth.client.get(f"/activity?mailbox={world.b['mailbox'].id}").get_data(as_text=True)
    assert "B-secret" not in html
    csv_text = auth.client.get(f"/activity.csv?mailbox={world.b['mailbox'].id}").get_data(as_text=True)
    assert "B-secret" not in csv_text


def test_empty_log_tells_what_to_do(app, make_household):
    make_household("new@example.com", "Fresh Home")
    auth = Auth(app.test_client())
    auth.login("new@example.com", PASSWORD)
    assert "Nothing has happened yet." in auth.client.get("/activity").get_data(as_text=True)


def test_csv_export_has_every_event_newest_first(owner_a, world):
    _add(world["account"].id, 3, mailbox_id=world["mailbox"].id)
    response = owner_a.client.get("/activity.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == activity.CSV_COLUMNS
    assert [r[5] for r in rows[1:4]] == ["Opened with a PIN. #2", "Opened with a PIN. #1", "Opened with a PIN. #0"]
    assert rows[1][4] == "Front mailbox"
    assert len(rows) == 5


def test_csv_export_follows_the_filters(owner_a, world):
    _add(world["account"].id, 2, kind="member.joined", summary="Joined")
    rows = list(csv.reader(io.StringIO(owner_a.client.get("/activity.csv?kind=member").get_data(as_text=True))))
    assert {r[3] for r in rows[1:]} == {"member.joined"}


def test_csv_cells_cannot_become_spreadsheet_formulas(owner_a, world):
    activity.record(world["account"].id, kind="mailbox.added", summary="=HYPERLINK(\"http://evil\")",
                    actor_label="+cmd|' /C calc'!A0", actor_kind="member")
    db.session.commit()
    text = owner_a.client.get("/activity.csv").get_data(as_text=True)
    assert "'=HYPERLINK" in text
    assert "'+cmd" in text


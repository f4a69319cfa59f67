"""A box page's events (mailboxes/_box_events.html) poll /mailboxes/<id>/box every 4 s with
the version they show (services/versions.py): a 304 while nothing moved and their times read
the same, drawn again on a new event or when a time turns."""
from datetime import timedelta

from portal.extensions import db
from portal.models import ActivityEvent, utcnow

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}


def _poll(client, mailbox, etag=None):
    return client.get(f"/mailboxes/{mailbox.id}/box", headers=dict(POLL, **({"If-None-Match": etag} if etag else {})))


def _event(mailbox, summary, when):
    db.session.add(ActivityEvent(account_id=mailbox.account_id, actor_kind="box", actor_label=mailbox.name,
                                 kind="box.closed", summary=summary, mailbox_id=mailbox.id, occurred_at=when))
    db.session.commit()


def test_the_box_s_events_answer_304_until_a_new_one_lands(kit, member_client, time_machine):
    time_machine.move_to(utcnow() + timedelta(minutes=10), tick=False)  # setting the box up is old news
    _gateway, mailbox = kit.ready_mailbox()
    time_machine.move_to(utcnow() + timedelta(minutes=10), tick=False)
    first = _poll(member_client, mailbox)
    etag = first.headers["ETag"]
    assert f'"If-None-Match": "\\"{etag[1:-1]}\\""' in first.get_data(as_text=True)
    assert _poll(member_client, mailbox, etag).status_code == 304
    _event(mailbox, "Parcel delivered", utcnow())
    changed = _poll(member_client, mailbox, etag)
    assert changed.status_code == 200 and "Parcel delivered" in changed.get_data(as_text=True)


def test_the_box_s_events_turn_their_minutes_with_the_event(kit, member_client, time_machine):
    start = utcnow().replace(second=20, microsecond=0) + timedelta(minutes=1)  # the clock's minute turns at :00
    time_machine.move_to(start, tick=False)
    _gateway, mailbox = kit.ready_mailbox()
    _event(mailbox, "Closed", start)
    time_machine.move_to(start + timedelta(minutes=5, seconds=45), tick=False)
    seen = _poll(member_client, mailbox)
    time_machine.move_to(start + timedelta(minutes=5, seconds=59), tick=False)
    assert _poll(member_client, mailbox, seen.headers["ETag"]).status_code == 304
    time_machine.move_to(start + timedelta(minutes=6), tick=False)
    turned = _poll(member_client, mailbox, seen.headers["ETag"])
    assert turned.status_code == 200 and "6 minutes ago" in turned.get_data(as_text=True)


def test_a_box_s_version_does_not_hold_for_its_live_part_or_another_box(kit, member_client, time_machine):
    time_machine.move_to(utcnow() + timedelta(minutes=10), tick=False)
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    time_machine.move_to(utcnow() + timedelta(minutes=10), tick=False)
    etag = _poll(member_client, front).headers["ETag"]
    assert _poll(member_client, front, etag).status_code == 304
    assert _poll(member_client, side, etag).status_code == 200
    live = member_client.get(f"/mailboxes/{front.id}", headers=dict(POLL, **{"If-None-Match": etag}))
    assert live.status_code == 200 and 'id="mailbox-live"' in live.get_data(as_text=True)

"""The worker's housekeeping deletes stale throttle rows and long-ended sessions, and
nothing that still protects or shows something."""
from datetime import timedelta

import sqlalchemy as sa

from portal.crypto import sha256_hex
from portal.extensions import db
from portal.jobs.registry import periodic_tasks
from portal.models import LoginSession, LoginThrottle, utcnow
from portal.services import housekeeping


def test_prune_keeps_what_still_counts_and_deletes_the_rest(app, make_household):
    user, _ = make_household()
    now = utcnow()
    old = now - timedelta(days=40)
    db.session.add_all([
        LoginThrottle(key="ip:stale", failures=3, window_started_at=now - timedelta(hours=2)),
        LoginThrottle(key="ip:recent", failures=3, window_started_at=now - timedelta(minutes=1)),
        LoginThrottle(key="email:locked", failures=9, window_started_at=now - timedelta(hours=2),
                      locked_until=now + timedelta(minutes=5)),
    ])
    for name, created, seen, revoked in [
        ("active", now, now, None),
        ("ended-yesterday", now - timedelta(days=1), now - timedelta(days=1), now - timedelta(days=1)),
        ("ended-long-ago", old, old, old),
        ("abandoned", old, old, None),
    ]:
        db.session.add(LoginSession(user_id=user.id, token_hash=sha256_hex(name), created_at=created,
                                    last_seen_at=seen, revoked_at=revoked))
    db.session.commit()

    assert housekeeping.prune(now) == {"throttles": 1, "sessions": 2, "idempotent_answers": 0}
    assert set(db.session.scalars(sa.select(LoginThrottle.key))) == {"ip:recent", "email:locked"}
    kept = set(db.session.scalars(sa.select(LoginSession.token_hash)))
    assert kept == {sha256_hex("active"), sha256_hex("ended-yesterday")}


def test_housekeeping_runs_as_a_periodic_task_of_the_worker(app):
    task = next(t for t in periodic_tasks() if t.name.endswith("prune_stale_rows"))
    assert task.interval(app.config) == app.config["HOUSEKEEPING_SECONDS"]

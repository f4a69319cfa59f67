"""The 10,000-household generator (benchmarks/scale_data.py) at 20 households, so it does not
rot: its rows are what the portal and the worker read as their own (PostgreSQL only, as the
benchmark; a database of its own, dropped after)."""
import os
import uuid

import pytest
import sqlalchemy as sa

from benchmarks import scale, scale_data
from portal import crypto
from portal.extensions import db
from portal.models import Account, ActivityEvent, Mailbox, Membership, Pin
from portal.services import device_reports
from tests.conftest import PG_URL, skip_or_fail
from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.support import isolated_client
from tests.plugins.text import visible_text

HOUSEHOLDS = 20


@pytest.fixture(scope="module")
def generated():
    if not PG_URL:
        skip_or_fail("PostgreSQL tests need TEST_DATABASE_URL")
    name = f"iotlock_scale_smoke_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    database = scale.ensure_database(HOUSEHOLDS, name=name, log=lambda _line: None)
    try:
        yield database
    finally:
        scale.drop_database(name)


@pytest.fixture
def scale_app(generated):
    app = scale.portal_app(generated.url, generated.data_key)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_the_data_set_has_the_sizes_of_the_issue_per_household(generated, scale_app):
    probe_boxes = sum(scale_data.PROBE_GATEWAYS)
    others = HOUSEHOLDS - 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account)) == HOUSEHOLDS
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox)) == \
        probe_boxes + scale_data.BOXES_PER_HOUSEHOLD * others
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ActivityEvent)) == \
        scale_data.PROBE_EVENTS + scale_data.EVENTS_PER_HOUSEHOLD * others
    pins = db.session.scalar(sa.select(sa.func.count()).select_from(Pin))
    assert probe_boxes * scale_data.PROBE_PINS_PER_BOX < pins <= \
        probe_boxes * scale_data.PROBE_PINS_PER_BOX + scale_data.PINS_PER_HOUSEHOLD * others
    per_user = db.session.scalars(sa.select(sa.func.count()).select_from(Membership)
                                  .group_by(Membership.user_id)).all()
    assert max(per_user) <= 2  # users in one household or two
    assert generated.rows["activity_events"] == scale_data.PROBE_EVENTS + scale_data.EVENTS_PER_HOUSEHOLD * others


def test_a_database_of_the_same_size_is_kept(generated):
    again = scale.ensure_database(HOUSEHOLDS, name=sa.make_url(generated.url).database, log=lambda _line: None)
    assert again.made_in is None
    assert again.data_key == generated.data_key


def test_every_pin_decrypts_for_its_row_and_every_channel_can_be_read(scale_app):
    live = db.session.scalars(sa.select(Pin).where(Pin.status != "removed")).all()
    assert live
    for pin in live:
        digits = crypto.decrypt(pin.digits_enc, table="pins", column="digits_enc", row_id=pin.id)
        assert pin.digits_digest == crypto.keyed_digest("pin", f"{pin.mailbox_id}:{digits}")
    channels = device_reports.channels_of_linked_households()
    boxes = db.session.scalar(sa.select(sa.func.count()).select_from(Mailbox))
    assert len(channels) > boxes  # every box's channel and every gateway's
    assert all(t.thing_key for t in channels)


def test_the_probe_owner_signs_in_and_sees_every_box_of_the_household(scale_app):
    client = isolated_client(scale_app)
    assert Auth(client).login(scale_data.PROBE_EMAIL, PASSWORD).status_code == 302
    page = visible_text(client.get("/gateways/").get_data(as_text=True))
    assert scale_data.PROBE_BOX in page
    assert client.get("/activity?page=2").status_code == 200

"""Page render time, logged in, for a household with 1 box, with 50 boxes of 10 PINs, and
with 10 boxes of 5 PINs after a year of parcels (600 codes each box had, used and ended,
with their changes and openings: tests/integration/test_history_cost.py).

Each benchmark times one GET through the Flask test client (every request in its own app
context and database session, as in production) of the dashboard `/gateways/`, the
gateway page or a mailbox page; `extra_info["queries"]` is the SQL statements of one such
request. The households are built as tests/integration/test_query_counts.py builds them.

Soft targets (median, on a 2-core development machine): 1 box: every page under 30 ms;
50 boxes of 10 PINs: dashboard and gateway page under 60 ms, mailbox page under 30 ms (it
shows one box, so its time should not grow with the household); a year of parcels: every
page under 30 ms (what a page shows does not grow with the history). The query count is the
same for every size (test_query_counts.py asserts that in the tests).
"""
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Mailbox
from tests.integration.test_history_cost import end_pins
from tests.integration.test_query_counts import _household_with
from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.queries import statements_of
from tests.plugins.support import isolated_client

from .conftest import soft_target

# (boxes, live PINs a box, parcels each box had)
SIZES = {"1box": (1, 1, 0), "50x10": (50, 10, 0), "10x5-year": (10, 5, 600)}
TARGETS = {
    ("dashboard", "1box"): 0.030, ("gateway", "1box"): 0.030, ("mailbox", "1box"): 0.030,
    ("dashboard", "50x10"): 0.060, ("gateway", "50x10"): 0.060, ("mailbox", "50x10"): 0.030,
    ("dashboard", "10x5-year"): 0.030, ("gateway", "10x5-year"): 0.030, ("mailbox", "10x5-year"): 0.030,
}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("page", ["dashboard", "gateway", "mailbox"])
def test_page_render(benchmark, app, make_household, page, size):
    boxes, pins, parcels = SIZES[size]
    user, gateway, mailbox = _household_with(make_household, f"{size}@example.com", boxes, pins)
    if parcels:
        for box in db.session.scalars(sa.select(Mailbox).where(Mailbox.account_id == mailbox.account_id)).all():
            end_pins(mailbox.account_id, box, parcels)
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE pins, commands, activity_events"))
            db.session.commit()
    path = {"dashboard": "/gateways/", "gateway": f"/gateways/{gateway.id}",
            "mailbox": f"/mailboxes/{mailbox.id}"}[page]
    client = isolated_client(app)
    assert Auth(client).login(user.email, PASSWORD).status_code == 302
    client.get(path)  # first-request work (household choice, session touch) is not the page's
    queries, shown = statements_of(client, path)
    assert shown.status_code == 200

    response = benchmark(client.get, path)

    assert response.status_code == 200
    benchmark.extra_info.update(queries=queries, backend=db.engine.dialect.name, boxes=boxes, pins_per_box=pins,
                                parcels_per_box=parcels,
                                html_kb=round(len(response.data) / 1024, 1))
    soft_target(benchmark, TARGETS[(page, size)])

"""A web request never writes to StreamIoT: every device route only saves the change and its
job; the worker does the StreamIoT work afterwards (ARCHITECTURE.md, "Layers")."""
import pytest
from flask import url_for

from portal.extensions import db
from portal.jobs.runner import drain
from tests.access.devices import ROUTES
from tests.plugins.accounts import csrf_from


@pytest.fixture
def provisioned(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    command = kit.command(gateway, "AUTH")
    return {"gateway": gateway, "mailbox": mailbox, "pin": pin, "command": command}


def test_no_device_route_writes_to_streamiot_during_the_request(app, kit, provisioned, member_client,
                                                                streamiot_writes):
    token = csrf_from(member_client.get("/settings").get_data(as_text=True))
    # Removals last, so every other route still finds its objects.
    ordered = sorted(ROUTES, key=lambda r: r.endpoint.endswith("remove"))
    exercised = 0
    for route in ordered:
        values = {name: provisioned[key].id for name, key in route.args.items()}
        with app.test_request_context():
            url = url_for(route.endpoint, **values)
        for method in route.methods:
            if method == "GET":
                response = member_client.get(url)
            else:
                response = member_client.open(url, method=method, data={**route.data, "csrf_token": token})
            assert response.status_code < 500, (route.endpoint, method, response.status_code)
            exercised += 1
    assert exercised >= 30
    assert streamiot_writes == []

    # The counter does see StreamIoT writes: the worker makes them.
    db.session.expire_all()
    drain(app)
    assert streamiot_writes

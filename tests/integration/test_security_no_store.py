"""`Cache-Control: no-store` on every export and secret answer (CSV export, settings file,
private keys, PIN digits, password-confirm pages) and on every other page a household
member or staff member gets: only static files may be cached."""
import pyotp
from flask import url_for

from portal.extensions import db
from portal.models import Pin
from portal.services import staff as staff_service
from tests.access import all_routes
from tests.plugins.accounts import PASSWORD, Auth, csrf_from


def _no_store(response, what):
    assert response.headers.get("Cache-Control") == "no-store", f"{what}: {response.headers.get('Cache-Control')}"


def _read(response):
    response.get_data()  # a streamed answer (the CSV) ends its request context once read
    return response


def _form_post(client, page_path, path, **data):
    token = csrf_from(client.get(page_path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def test_exports_and_secret_answers_are_never_stored(kit, member_client):
    client = member_client
    # A gateway and a box whose key pairs IoTLock made: their private keys are offered once.
    created = _form_post(client, "/gateways/new", "/gateways/new", name="Hall", key_mode="generate")
    gateway_id = created.headers["Location"].rsplit("/", 1)[-1]
    kit.drain()
    box = _form_post(client, f"/mailboxes/new/{gateway_id}", f"/mailboxes/new/{gateway_id}",
                     name="Safe", kind="gun_safe", key_mode="generate")
    mailbox_id = box.headers["Location"].rsplit("/", 1)[-1]
    kit.drain()
    pin = _form_post(client, f"/mailboxes/{mailbox_id}", f"/mailboxes/{mailbox_id}/pins", label="Pat", digits="5827")
    assert pin.status_code == 303
    pin_id = db.session.scalars(db.select(Pin.id).where(Pin.label == "Pat")).one()

    answers = {
        "activity CSV": _read(client.get("/activity.csv")),
        "settings password page": client.get(f"/gateways/{gateway_id}/settings"),
        "settings wrong password": _form_post(client, f"/gateways/{gateway_id}/settings",
                                              f"/gateways/{gateway_id}/settings/download", password="wrong password"),
        "box key page": client.get(f"/mailboxes/{mailbox_id}/key"),
        "box key wrong password": _form_post(client, f"/mailboxes/{mailbox_id}/key", f"/mailboxes/{mailbox_id}/key",
                                             password="wrong password"),
        "PIN digits": _form_post(client, f"/mailboxes/{mailbox_id}", f"/mailboxes/pins/{pin_id}/show",
                                 password=PASSWORD),
        "PIN digits (htmx)": client.post(f"/mailboxes/pins/{pin_id}/show", headers={"HX-Request": "true"},
                                         data={"csrf_token": csrf_from(client.get(f"/mailboxes/{mailbox_id}")
                                                                       .get_data(as_text=True)),
                                               "password": PASSWORD}),
        "settings file": _form_post(client, f"/gateways/{gateway_id}/settings",
                                    f"/gateways/{gateway_id}/settings/download", password=PASSWORD),
        "box key file": _form_post(client, f"/mailboxes/{mailbox_id}/key", f"/mailboxes/{mailbox_id}/key/download"),
    }
    assert answers["activity CSV"].mimetype == "text/csv"
    assert "private_key" in answers["settings file"].get_json(force=True)
    assert "private_key" in answers["box key file"].get_json(force=True)
    assert "5827" in answers["PIN digits"].get_data(as_text=True)
    for what, response in answers.items():
        _no_store(response, what)


def test_every_get_page_of_a_member_is_never_stored(app, world):
    auth = Auth(app.test_client())
    auth.login(world.a["owner"].email, PASSWORD)
    for route in all_routes():
        if "GET" not in route.methods or route.access == "staff":
            continue
        values = {name: world.id_of(key) for name, key in route.args.items()} | route.fixed_args
        with app.test_request_context():
            url = url_for(route.endpoint, **values)
        _no_store(_read(auth.client.get(url)), url)


def test_the_recovery_codes_page_and_the_console_are_never_stored(client, staff, secret_household):
    user = staff.create()
    staff.login()
    page = client.get("/support/enrol")
    _no_store(page, "enrol page (TOTP secret)")
    secret = staff_service.begin_enrolment(user).secret
    codes = client.post("/support/enrol", data={"code": pyotp.TOTP(secret).now(),
                                                "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert "only time they are shown" in codes.get_data(as_text=True)
    _no_store(codes, "recovery codes")
    _no_store(client.get(f"/support/households/{secret_household.account.id}"), "console household page")


def test_static_files_may_be_cached(client):
    assert client.get("/static/css/app.css").headers.get("Cache-Control") != "no-store"

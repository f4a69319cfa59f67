"""Errors get friendly pages with the security headers, never a stack trace."""
from portal.extensions import db


def test_an_unexpected_error_gets_the_friendly_500_page_and_no_trace(app, client):
    def boom():
        db.session.execute(db.text("SELECT 1"))
        raise RuntimeError("secret internals: thing key 5c0ff33")

    app.add_url_rule("/boom", "boom", boom)
    response = client.get("/boom")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert "Nothing you saved was lost" in html
    assert "5c0ff33" not in html and "Traceback" not in html
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_page_gets_the_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "We couldn’t find that page" in response.get_data(as_text=True)
    assert "Content-Security-Policy" in response.headers


def test_a_member_who_is_not_an_owner_gets_the_friendly_403(app, client, auth, make_household):
    from portal.models import ROLE_MEMBER, Membership
    from portal.services import accounts
    from tests.plugins.accounts import PASSWORD

    _, household = make_household()
    member = accounts.register_user("plain@example.com", PASSWORD)
    db.session.add(Membership(account_id=household.id, user_id=member.id, role=ROLE_MEMBER))
    db.session.commit()
    auth.login("plain@example.com", PASSWORD)
    response = client.post("/settings/household", data={"household-name": "Mine now", "csrf_token": auth.csrf("/settings")})
    assert response.status_code == 403
    assert "You can’t do that here" in response.get_data(as_text=True)


def test_a_request_over_the_size_limit_gets_the_friendly_413_and_nothing_echoed(app, client, auth):
    """An anonymous 2 MB login post is refused before any form reads it (MAX_CONTENT_LENGTH)."""
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    token = auth.csrf("/login")
    big = "echo-me-" * (2 * 1024 * 1024 // 8)
    as_form = client.post("/login", data={"email": big, "password": "x", "csrf_token": token})
    as_multipart = client.post(
        "/login", data={"email": big, "password": "x", "csrf_token": token}, content_type="multipart/form-data"
    )
    for response in (as_form, as_multipart):
        html = response.get_data(as_text=True)
        assert response.status_code == 413
        assert "That was too much to send" in html
        assert "echo-me" not in html and len(html) < 20_000
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

"""What a member sees of the household's StreamIoT link, and when the partial polls."""
import re
import socket
import uuid
from datetime import timedelta

import pytest
from flask import render_template

from portal.jobs.runner import drain, run_due_jobs
from portal.models import Account, utcnow
from portal.streamiot.deployment import client_from_config


def render(account, poll_url=None) -> str:
    return render_template("account/_link_state.html", account=account, poll_url=poll_url)


def household(**link) -> Account:
    return Account(id=uuid.uuid4(), name="Elm Street", **link)


@pytest.fixture
def page(sqlite_app):
    with sqlite_app.test_request_context("/gateways/"):
        yield


def polls(html: str) -> bool:
    return "hx-get" in html


def test_connecting_says_so_and_polls_its_page(page):
    account = household(link_state="connecting")
    html = render(account, poll_url="/gateways/")
    assert "Connecting" in html
    assert 'hx-get="/gateways/"' in html
    assert 'hx-trigger="every 2s"' in html
    assert f'hx-select="#link-state-{account.id}"' in html
    assert 'hx-swap="outerHTML"' in html
    assert f'id="link-state-{account.id}"' in html


def test_connected_stops_polling(page):
    html = render(household(link_state="connected"), poll_url="/gateways/")
    assert "Connected" in html
    assert not polls(html)


def test_problem_shows_the_reason_and_the_next_attempt(page):
    account = household(
        link_state="problem",
        link_error="StreamIoT could not be reached (POST /users)",
        link_retry_at=utcnow() + timedelta(seconds=30),
    )
    html = render(account, poll_url="/gateways/")
    assert "Problem" in html
    # In household words: the platform's name and the request line are the worker's, not theirs.
    assert "The device service could not be reached (a request)" in html and "StreamIoT" not in html
    assert re.search(r"next attempt in <time [^>]*>(30|29) s</time>", html)
    assert polls(html)


def test_a_later_attempt_is_shown_in_words(page):
    account = household(
        link_state="problem",
        link_error="StreamIoT is unavailable",
        link_retry_at=utcnow() + timedelta(minutes=5, seconds=5),
    )
    assert re.search(r"next attempt <time [^>]*>in 5 minutes</time>", render(account))


def test_problem_after_giving_up_says_so_and_stops_polling(page):
    account = household(
        link_state="problem",
        link_error="StreamIoT could not be reached (POST /users) (gave up after 12 attempts)",
        link_retry_at=None,
    )
    html = render(account, poll_url="/gateways/")
    assert "gave up after 12 attempts" in html
    assert "stopped retrying" in html
    assert not polls(html)


def test_without_a_poll_url_the_partial_is_static(page):
    assert not polls(render(household(link_state="connecting")))


def test_reason_is_escaped(page):
    html = render(household(link_state="problem", link_error="<script>x</script>", link_retry_at=None))
    assert "<script>x</script>" not in html


def test_partial_follows_the_link_job_from_connecting_to_connected(app, make_household):
    _, account = make_household()
    with app.test_request_context("/gateways/"):
        assert "Connecting" in render(account, "/gateways/")
        with socket.socket() as s:  # a port where nothing listens
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app.config.update(STREAMIOT_URL=f"http://127.0.0.1:{port}", STREAMIOT_READER_URL=f"http://127.0.0.1:{port}/r")
        run_due_jobs(app)
        html = render(account, "/gateways/")
        assert "Problem" in html and "The device service could not be reached" in html and polls(html)

        from portal.jobs.context import set_streamiot

        app.config["STREAMIOT_URL"] = "embedded"
        set_streamiot(app, client_from_config(app.config))
        drain(app)
        html = render(account, "/gateways/")
        assert "Connected" in html and not polls(html)

"""The serving benchmark's bare-stack app (benchmarks/floor_app.py) does what its rows claim: a
logged-in page from the session cookie and one row, a 304 for an unchanged version, and
nothing for a visitor without the cookie."""
from benchmarks import floor_app


def test_the_bare_stack_app_answers_logged_in_and_refuses_without_the_cookie(tmp_path):
    url = f"sqlite:///{tmp_path / 'floor.sqlite3'}"
    floor_app.prepare(url)
    floor_app.prepare(url)  # again: the benchmark runs it once per backend, on a fresh database or not
    app = floor_app.create_app(url, "k" * 64)
    client = app.test_client()
    assert client.get("/page").status_code == 401
    assert client.get("/login").status_code == 200
    page = client.get("/page")
    assert page.status_code == 200 and "Signed in as Floor." in page.get_data(as_text=True)
    fresh = client.get("/poll")
    assert fresh.status_code == 200 and fresh.headers["ETag"] == '"v1"'
    assert client.get("/poll", headers={"If-None-Match": '"v1"'}).status_code == 304
    assert client.get("/poll", headers={"If-None-Match": '"v0"'}).status_code == 200

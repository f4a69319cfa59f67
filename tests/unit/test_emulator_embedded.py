"""The embedded emulator: its requests adapter cannot be told from HTTP.

Also: state lives in the emulator's own SQLite file and survives a restart, and threads
may share one emulator.
"""
import json
import multiprocessing
import os
import threading
import uuid

import pytest
import requests

from portal.streamiot.emulator import (
    EMBEDDED_READER_URL,
    EMBEDDED_URL,
    EmbeddedAdapter,
    forget_emulator,
    get_emulator,
    make_emulator,
)
from portal.streamiot.emulator.server import serve_in_thread
from portal.streamiot.emulator.store import Store

TIMEOUT = (3.05, 10)


@pytest.fixture
def emulator(tmp_path):
    return make_emulator(tmp_path / "streamiot.sqlite3")


@pytest.fixture
def embedded(emulator):
    session = requests.Session()
    session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(emulator))
    return session


@pytest.fixture
def over_http(emulator):
    served = serve_in_thread(emulator)
    yield served
    served.stop()


def _user(session, url):
    email = f"u-{uuid.uuid4().hex[:10]}@example.com"
    session.post(f"{url}/users", json={"email": email, "password": "long-enough"}, timeout=TIMEOUT)
    token = session.post(f"{url}/tokens", json={"email": email, "password": "long-enough"}, timeout=TIMEOUT)
    return {"Authorization": f"Bearer {token.json()['token']}"}


def _observable(answer):
    """What a client can observe, minus the headers only a real server adds."""
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("date", "server", "connection")}
    return answer.status_code, headers, answer.content


def test_embedded_answers_equal_the_same_emulator_over_http(embedded, over_http):
    auth = _user(embedded, EMBEDDED_URL)
    created = embedded.post(f"{EMBEDDED_URL}/things", json={"name": "gw_1 50%"}, headers=auth, timeout=TIMEOUT)
    thing_id = created.headers["Location"].rsplit("/", 1)[-1]
    key = embedded.get(f"{EMBEDDED_URL}/things/{thing_id}", headers=auth, timeout=TIMEOUT).json()["key"]
    channel = embedded.post(f"{EMBEDDED_URL}/channels", json={"name": "ch"}, headers=auth, timeout=TIMEOUT)
    channel_id = channel.headers["Location"].rsplit("/", 1)[-1]
    embedded.post(
        f"{EMBEDDED_URL}/connect",
        json={"channel_ids": [channel_id], "thing_ids": [thing_id]},
        headers=auth,
        timeout=TIMEOUT,
    )
    thing_auth = {"Authorization": f"Thing {key}"}
    senml = {**thing_auth, "Content-Type": "application/senml+json"}
    pack = json.dumps([{"bn": f"{thing_id}_", "n": "AUTH", "u": "PIN", "v": 1234, "t": 1_700_000_000}])

    calls = [
        ("GET", "/things", {"params": {"name": "gw_1 50%"}, "headers": auth}),
        ("GET", f"/things/{thing_id}", {"headers": auth}),
        ("GET", f"/things/{uuid.uuid4()}", {"headers": auth}),
        ("GET", "/things", {"params": {"limit": 101}, "headers": auth}),
        ("GET", "/things", {}),
        ("POST", "/things", {"data": "{}", "headers": {**auth, "Content-Type": "text/plain"}}),
        ("POST", f"/http/channels/{channel_id}/messages", {"data": pack, "headers": senml}),
        ("POST", f"/http/channels/{channel_id}/messages", {"data": "garbage", "headers": senml}),
        ("GET", f"/reader/channels/{channel_id}/messages", {"headers": thing_auth}),
        ("GET", f"/reader/channels/{channel_id}/messages", {"params": {"name": "AUTH"}, "headers": thing_auth}),
        ("GET", f"/reader/channels/{channel_id}/messages", {"headers": {"Authorization": "Thing nope"}}),
        ("GET", "/no/such/path", {}),
    ]
    for method, path, kwargs in calls:
        here = embedded.request(method, EMBEDDED_URL + path, timeout=TIMEOUT, **kwargs)
        there = requests.request(method, over_http.url + path, timeout=TIMEOUT, **kwargs)
        assert _observable(here) == _observable(there), (method, path)


def test_the_adapter_builds_a_real_requests_response(embedded):
    auth = _user(embedded, EMBEDDED_URL)

    answer = embedded.get(f"{EMBEDDED_URL}/things?limit=5", headers=auth, timeout=TIMEOUT)
    failed = embedded.get(f"{EMBEDDED_URL}/things/{uuid.uuid4()}", headers=auth, timeout=TIMEOUT)

    assert isinstance(answer, requests.Response)
    assert answer.url == f"{EMBEDDED_URL}/things?limit=5"
    assert answer.request.headers["Authorization"] == auth["Authorization"]
    assert answer.encoding is None
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["limit"] == 5
    assert answer.ok and answer.reason == "OK"
    assert answer.elapsed is not None
    with pytest.raises(requests.HTTPError):
        failed.raise_for_status()


def test_streamed_responses_can_be_iterated(embedded):
    auth = _user(embedded, EMBEDDED_URL)

    answer = embedded.get(f"{EMBEDDED_URL}/users/profile", headers=auth, stream=True, timeout=TIMEOUT)

    assert json.loads(b"".join(answer.iter_content(chunk_size=3)))["email"].endswith("@example.com")


def test_the_reader_answers_under_the_embedded_reader_url(embedded):
    auth = _user(embedded, EMBEDDED_URL)
    channel = embedded.post(f"{EMBEDDED_URL}/channels", json={"name": "ch"}, headers=auth, timeout=TIMEOUT)
    channel_id = channel.headers["Location"].rsplit("/", 1)[-1]

    page = embedded.get(f"{EMBEDDED_READER_URL}/channels/{channel_id}/messages", headers=auth, timeout=TIMEOUT)

    assert page.status_code == 200
    assert page.json() == {"offset": 0, "limit": 10, "format": "messages", "total": 0}


def test_percent_encoded_paths_reach_the_app_decoded(embedded):
    auth = _user(embedded, EMBEDDED_URL)

    answer = embedded.get(f"{EMBEDDED_URL}/things/not%20a%20uuid", headers=auth, timeout=TIMEOUT)

    assert answer.status_code == 500 and answer.content == b""


def test_state_survives_a_restart_on_the_same_file(tmp_path):
    path = tmp_path / "streamiot.sqlite3"
    first = requests.Session()
    first.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(make_emulator(path)))
    auth = _user(first, EMBEDDED_URL)
    created = first.post(f"{EMBEDDED_URL}/things", json={"name": "kept"}, headers=auth, timeout=TIMEOUT)

    second = requests.Session()
    second.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(make_emulator(path)))
    answer = second.get(f"{EMBEDDED_URL}{created.headers['Location']}", headers=auth, timeout=TIMEOUT)

    # The token of the first instance is still valid: the signing secret is in the file.
    assert answer.status_code == 200
    assert answer.json()["name"] == "kept"


def test_one_emulator_per_database_file(tmp_path):
    a = get_emulator(tmp_path / "a.sqlite3")

    assert get_emulator(str(tmp_path / "a.sqlite3")) is a
    assert get_emulator(tmp_path / "b.sqlite3") is not a


def test_a_forgotten_emulator_is_closed_and_made_anew_on_the_same_file(tmp_path):
    a = get_emulator(tmp_path / "a.sqlite3")
    with a.store.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('kept', 'yes')")

    forget_emulator(tmp_path / "a.sqlite3")

    assert a.store._conn is None
    b = get_emulator(tmp_path / "a.sqlite3")
    assert b is not a
    with b.store.transaction() as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'kept'").fetchone()[0] == "yes"


def test_a_failed_transaction_is_rolled_back_and_the_next_one_works(tmp_path):
    store = Store(str(tmp_path / "s.sqlite3"))
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('lost', 'x')")
        raise RuntimeError("the block failed")
    with store.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'lost'").fetchone()[0] == 0
        conn.execute("INSERT INTO meta (key, value) VALUES ('kept', 'y')")
    with Store(store.path).transaction() as conn:  # a second store on the file sees the commit
        assert conn.execute("SELECT value FROM meta WHERE key = 'kept'").fetchone()[0] == "y"


def _write_in_child(path: str, store: Store) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('child', ?)", (path,))
    assert store._conn_pid == os.getpid()  # not the parent's connection


def test_a_forked_process_writes_on_a_connection_of_its_own(tmp_path):
    store = Store(str(tmp_path / "s.sqlite3"))
    with store.transaction() as conn:  # the parent's connection is open before the fork
        conn.execute("INSERT INTO meta (key, value) VALUES ('parent', 'p')")
    parent_conn = store._conn

    child = multiprocessing.get_context("fork").Process(target=_write_in_child, args=(store.path, store))
    child.start()
    child.join(30)

    assert child.exitcode == 0
    with store.transaction() as conn:
        assert conn is parent_conn
        assert conn.execute("SELECT value FROM meta WHERE key = 'child'").fetchone()[0] == store.path


def test_the_emulator_keeps_its_state_in_its_own_file(tmp_path):
    make_emulator(tmp_path / "instance" / "streamiot.sqlite3")

    assert [p.name for p in (tmp_path / "instance").iterdir() if p.suffix == ".sqlite3"] == ["streamiot.sqlite3"]


def test_threads_can_share_one_emulator(embedded, emulator):
    auth = _user(embedded, EMBEDDED_URL)
    errors = []

    def create(n):
        session = requests.Session()
        session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(emulator))
        for i in range(10):
            answer = session.post(
                f"{EMBEDDED_URL}/things", json={"name": f"t-{n}-{i}"}, headers=auth, timeout=TIMEOUT
            )
            if answer.status_code != 201:
                errors.append(answer.status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    page = embedded.get(f"{EMBEDDED_URL}/things", params={"name": "t-"}, headers=auth, timeout=TIMEOUT)
    assert page.json()["total"] == 80


def test_self_registration_can_be_turned_off_so_only_the_admin_creates_users(tmp_path):
    session = requests.Session()
    app = make_emulator(tmp_path / "s.sqlite3", self_register=False, admin=("admin@example.com", "admin-pass"))
    session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(app))
    new = {"email": "new@example.com", "password": "long-enough"}

    anonymous = session.post(f"{EMBEDDED_URL}/users", json=new, timeout=TIMEOUT)
    token = session.post(
        f"{EMBEDDED_URL}/tokens", json={"email": "admin@example.com", "password": "admin-pass"}, timeout=TIMEOUT
    ).json()["token"]
    by_admin = session.post(
        f"{EMBEDDED_URL}/users", json=new, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )

    assert anonymous.status_code == 401
    assert by_admin.status_code == 201


def test_the_emulator_http_fixture_serves_a_fresh_emulator_over_http(emulator_http):
    created = requests.post(
        f"{emulator_http.url}/users", json={"email": "fx@example.com", "password": "long-enough"}, timeout=TIMEOUT
    )
    token = requests.post(
        f"{emulator_http.url}/tokens", json={"email": "fx@example.com", "password": "long-enough"}, timeout=TIMEOUT
    ).json()["token"]
    unknown = requests.get(
        f"{emulator_http.reader_url}/channels/{uuid.uuid4()}/messages",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )

    assert created.status_code == 201
    assert unknown.status_code == 500  # the reader exists, the channel does not
    assert emulator_http.app.db_path.endswith("streamiot-http.sqlite3")


def test_a_stopped_server_answers_no_kept_alive_connection(emulator):
    """stop() is a killed platform: a client that kept its connection open gets no answer
    from it either (the outage test stopped the server and one PIN was still delivered)."""
    served = serve_in_thread(emulator)
    session = requests.Session()
    try:
        assert session.get(f"{served.url}/things", timeout=TIMEOUT).status_code == 401  # answered
        served.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{served.url}/things", timeout=TIMEOUT)
    finally:
        session.close()

"""Plain-HTTP helpers of the StreamIoT contract suite.

A `Target` is one deployment under test; the assertions check the platform's answer shapes.
"""
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass

import requests

TIMEOUT = (3.05, 20)
# A real deployment stores messages asynchronously (adapter -> broker -> writer).
READ_WAIT_SECONDS = float(os.environ.get("STREAMIOT_CONTRACT_READ_WAIT", "15"))

SENML = "application/senml+json"
ERROR_TYPE = "text/plain; charset=utf-8"


@dataclass
class User:
    email: str
    password: str
    id: str
    token: str

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


class Target:
    """One StreamIoT deployment under test, with helpers that make plain HTTP calls."""

    def __init__(self, name: str, url: str, reader_url: str, admin=("", "")):
        self.name = name
        self.url = url
        self.reader_url = reader_url
        self.admin = admin if all(admin) else None
        self.http = requests.Session()
        self._users: dict[str, User] = {}
        self._created: list[tuple[str, str, User]] = []

    # --- raw calls ---

    def call(self, method: str, path: str, *, user: User | None = None, headers=None, **kwargs):
        all_headers = dict(user.auth) if user else {}
        all_headers.update(headers or {})
        return self.http.request(method, self.url + path, headers=all_headers, timeout=TIMEOUT, **kwargs)

    def read(self, channel_id: str, *, headers: dict, params=None):
        return self.http.get(
            f"{self.reader_url}/channels/{channel_id}/messages",
            headers=headers,
            params=params,
            timeout=TIMEOUT,
        )

    def publish(self, channel_id: str, key: str, pack, *, subtopic: str = "", headers=None):
        body = pack if isinstance(pack, (bytes, str)) else json.dumps(pack)
        path = f"/http/channels/{channel_id}/messages" + (f"/{subtopic}" if subtopic else "")
        all_headers = {"Authorization": f"Thing {key}", "Content-Type": SENML}
        all_headers.update(headers or {})
        return self.http.post(self.url + path, data=body, headers=all_headers, timeout=TIMEOUT)

    # --- users ---

    def register(self, email: str, password: str):
        headers = {}
        if self.admin:
            headers = self.login(*self.admin).auth
        return self.call("POST", "/users", json={"email": email, "password": password}, headers=headers)

    def login(self, email: str, password: str) -> User:
        answer = self.call("POST", "/tokens", json={"email": email, "password": password})
        assert answer.status_code == 201, answer.text
        token = answer.json()["token"]
        profile = self.call("GET", "/users/profile", headers={"Authorization": f"Bearer {token}"})
        return User(email, password, profile.json().get("id", ""), token)

    def new_user(self) -> User:
        email = f"contract-{uuid.uuid4().hex[:16]}@example.com"
        password = f"pw-{uuid.uuid4().hex}"
        answer = self.register(email, password)
        assert answer.status_code == 201, answer.text
        return self.login(email, password)

    def user(self, which: str = "main") -> User:
        """A user shared by the tests of this run (deployments cannot delete users)."""
        if which not in self._users:
            self._users[which] = self.new_user()
        return self._users[which]

    # --- things, channels, connections ---

    def _created_id(self, kind: str, answer, user: User) -> str:
        assert answer.status_code == 201, answer.text
        entity_id = answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        self._created.append((kind, entity_id, user))
        return entity_id

    def create_thing(self, user: User, name: str, **fields) -> tuple[str, str]:
        answer = self.call("POST", "/things", user=user, json={"name": name, **fields})
        thing_id = self._created_id("things", answer, user)
        key = self.call("GET", f"/things/{thing_id}", user=user).json()["key"]
        return thing_id, key

    def create_channel(self, user: User, name: str, **fields) -> str:
        answer = self.call("POST", "/channels", user=user, json={"name": name, **fields})
        return self._created_id("channels", answer, user)

    def remember(self, kind: str, entity_id: str, user: User) -> None:
        self._created.append((kind, entity_id, user))

    def connect(self, user: User, channel_ids, thing_ids) -> None:
        answer = self.call(
            "POST", "/connect", user=user, json={"channel_ids": channel_ids, "thing_ids": thing_ids}
        )
        assert answer.status_code == 200, answer.text

    def device(self, user: User, tag: str):
        """A channel with one connected thing: (channel id, thing id, thing key)."""
        channel_id = self.create_channel(user, f"{tag}-ch")
        thing_id, key = self.create_thing(user, f"{tag}-th")
        self.connect(user, [channel_id], [thing_id])
        return channel_id, thing_id, key

    def read_until(self, channel_id: str, headers: dict, params=None, *, total: int):
        """The reader page once it holds `total` messages (a deployment stores them late)."""
        deadline = time.monotonic() + READ_WAIT_SECONDS
        while True:
            answer = self.read(channel_id, headers=headers, params=params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            if page["total"] >= total or time.monotonic() > deadline:
                assert page["total"] == total, page
                return page
            time.sleep(0.2)

    def cleanup(self) -> None:
        for kind, entity_id, user in reversed(self._created):
            with contextlib.suppress(requests.RequestException):
                self.call("DELETE", f"/{kind}/{entity_id}", user=user)
        self._created.clear()


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except (ValueError, TypeError):
        return False


def assert_error(answer, status: int, message: str | None = None) -> None:
    """An error with a JSON body under `text/plain`, as the platform sends them."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers.get("Content-Type") == ERROR_TYPE
    body = json.loads(answer.content)
    if message is not None:
        assert body == {"error": message}
    else:
        assert isinstance(body.get("error"), str)


def assert_empty(answer, status: int) -> None:
    """An answer with no body and no content type (empty 500s, the adapter's 202)."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.content == b""
    assert "Content-Type" not in answer.headers


def assert_json_empty(answer, status: int) -> None:
    """A users/things success with an empty body that still says application/json."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.content == b""
    assert answer.headers.get("Content-Type") == "application/json"

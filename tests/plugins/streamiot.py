"""Shared fixtures: streamiot (the client for the test app's StreamIoT, a throwaway user)."""
import uuid

import pytest
import requests

from portal.streamiot.deployment import client_from_config
from portal.streamiot.emulator import EmbeddedAdapter


@pytest.fixture
def streamiot(app):
    """The StreamIoT client the test app uses (the embedded emulator unless overridden)."""
    return client_from_config(app.config)


@pytest.fixture
def streamiot_user(streamiot):
    """A fresh StreamIoT user, logged in: a UserAPI of its own."""
    email = f"test-{uuid.uuid4().hex[:12]}@iotlock.invalid"
    password = f"pw-{uuid.uuid4().hex}"
    streamiot.create_user(email, password)
    return streamiot.as_user(email, password)


@pytest.fixture
def emulator_http(tmp_path):
    """A fresh StreamIoT emulator served over real HTTP on a free port:
    `.url` (STREAMIOT_URL), `.reader_url` (STREAMIOT_READER_URL), `.app` (the emulator)."""
    from portal.streamiot.emulator import make_emulator
    from portal.streamiot.emulator.server import serve_in_thread

    served = serve_in_thread(make_emulator(tmp_path / "streamiot-http.sqlite3"))
    yield served
    served.stop()


@pytest.fixture
def streamiot_writes(monkeypatch):
    """Every POST/PUT/DELETE any code in this process sends to StreamIoT (embedded or HTTP)."""
    writes = []
    for adapter in (EmbeddedAdapter, requests.adapters.HTTPAdapter):
        original = adapter.send

        def send(self, request, *args, _original=original, **kwargs):
            if request.method in ("POST", "PUT", "DELETE", "PATCH"):
                writes.append(f"{request.method} {request.url}")
            return _original(self, request, *args, **kwargs)

        monkeypatch.setattr(adapter, "send", send)
    return writes

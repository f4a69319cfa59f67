"""The embedded StreamIoT emulator: a WSGI stand-in for a StreamIoT deployment.

It answers like Mainflux 0.13.0 and keeps its state in its own SQLite file.

`make_emulator(db_path)` builds the app (proxy paths at the root, the reader under
`/reader`); `get_emulator(db_path)` returns one shared app per database file in this
process (`forget_emulator` drops it); `EmbeddedAdapter(app)` lets `requests` talk to it
without a socket.
"""
import os
import threading

from portal.streamiot.emulator.adapter import EmbeddedAdapter
from portal.streamiot.emulator.app import Emulator

EMBEDDED_URL = "http://streamiot.embedded"
EMBEDDED_READER_URL = "http://streamiot.embedded/reader"

_instances: dict[tuple[str, float], Emulator] = {}
_instances_lock = threading.Lock()


def make_emulator(
    db_path,
    token_ttl: float = 36000,
    *,
    clock=None,
    self_register: bool = True,
    admin: tuple[str, str] | None = None,
) -> Emulator:
    """A new emulator app on `db_path`.

    `clock` (a `time.time`-like function) lets tests move time, e.g. to expire tokens.
    With `self_register=False`, `POST /users` needs the token of the `admin` user
    (`(email, password)`, created if missing), as on deployments that disable
    self-registration.
    """
    return Emulator(
        str(db_path), token_ttl, clock=clock, self_register=self_register, admin=admin
    )


def get_emulator(db_path, token_ttl: float = 36000) -> Emulator:
    """The process's one emulator app for this database file (created on first use)."""
    key = (os.path.abspath(str(db_path)), float(token_ttl))
    with _instances_lock:
        app = _instances.get(key)
        if app is None:
            app = _instances[key] = make_emulator(key[0], token_ttl)
        return app


def forget_emulator(db_path) -> None:
    """Drop this process's emulators on a database file, closing their connection (tests do,
    when the app that used the file is done with it)."""
    path = os.path.abspath(str(db_path))
    with _instances_lock:
        for key in [key for key in _instances if key[0] == path]:
            _instances.pop(key).store.close()


__all__ = [
    "EMBEDDED_READER_URL",
    "EMBEDDED_URL",
    "EmbeddedAdapter",
    "Emulator",
    "forget_emulator",
    "get_emulator",
    "make_emulator",
]

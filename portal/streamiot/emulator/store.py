"""The emulator's own SQLite file: users, things, channels, connections and messages.

Every request opens its own short connection under one lock per store, so the
emulator is safe to call from any thread and never holds file handles between
requests (tests create thousands of emulators, one per temporary directory).
"""
import contextlib
import json
import os
import secrets
import sqlite3
import threading

from portal.streamiot.emulator import filters

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    metadata TEXT
);
CREATE TABLE IF NOT EXISTS things (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL UNIQUE,
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS things_owner ON things (owner);
CREATE TABLE IF NOT EXISTS channels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS channels_owner ON channels (owner);
CREATE TABLE IF NOT EXISTS connections (
    channel_id TEXT NOT NULL,
    thing_id TEXT NOT NULL,
    PRIMARY KEY (channel_id, thing_id)
);
CREATE INDEX IF NOT EXISTS connections_thing ON connections (thing_id);
-- What a user deleted: reading it again gives 404 instead of the unknown-id 500.
CREATE TABLE IF NOT EXISTS deleted (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    subtopic TEXT NOT NULL DEFAULT '',
    publisher TEXT NOT NULL,
    protocol TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT,
    time REAL NOT NULL,
    update_time REAL,
    value REAL,
    string_value TEXT,
    bool_value INTEGER,
    data_value TEXT,
    sum REAL
);
CREATE INDEX IF NOT EXISTS messages_channel_time ON messages (channel, time);
-- The things service's Redis caches (things/redis/things.go, things/redis/channels.go),
-- filled when a key is first used on a channel and never expired. `thing_keys` is
-- "thing_key:<key> -> id", `thing_ids` is "thing:<id> -> key", `channel_things` the set
-- "channel:<id>" of thing ids that used a key on it.
CREATE TABLE IF NOT EXISTS thing_keys (key TEXT PRIMARY KEY, thing_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS thing_ids (thing_id TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channel_things (
    channel_id TEXT NOT NULL,
    thing_id TEXT NOT NULL,
    PRIMARY KEY (channel_id, thing_id)
);
"""


def _like(name, pattern):
    return 1 if filters.name_matches(name, pattern) else 0


def _contains(document, fragment):
    return 1 if filters.contains(json.loads(document or "{}"), json.loads(fragment)) else 0


class Store:
    def __init__(self, db_path: str):
        self.path = os.path.abspath(db_path)
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = 0
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with self.lock, contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('token_secret', ?)",
                (secrets.token_hex(32),),
            )
            conn.commit()
            row = conn.execute("SELECT value FROM meta WHERE key = 'token_secret'").fetchone()
            self.token_secret = bytes.fromhex(row[0])

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.create_function("name_like", 2, _like, deterministic=True)
        conn.create_function("json_contains", 2, _contains, deterministic=True)
        return conn

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction; rolled back when the block raises. Transactions of this
        process take turns on the lock, so they share one connection (opening one each time
        cost about as much as a small request); a forked process opens its own."""
        with self.lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                self._conn = None  # busy past the timeout, or broken: the next one starts afresh
                raise
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._conn = None  # the next transaction starts on a new connection
                raise

    def close(self) -> None:
        with self.lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._conn_pid != os.getpid():
            self._conn = self._connect()
            self._conn_pid = os.getpid()
        return self._conn

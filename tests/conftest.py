"""Shared fixtures: an app per test on SQLite and (when TEST_DATABASE_URL is set) on
PostgreSQL, a test client, and helpers to create users and households. Modules marked
`pytest.mark.rollback` share one app per backend and roll back after each test instead
(tests/plugins/rollback.py).

Skips happen only when a service is absent on this machine; with
IOTLOCK_REQUIRE_ALL_TESTS=1 (CI) such a skip fails the run instead."""
import os
import shutil
import uuid

import pytest
import sqlalchemy as sa
from jinja2 import BytecodeCache

from config import TestConfig
from portal import create_app
from portal.crypto import generate_data_key
from portal.extensions import db
from portal.streamiot.emulator import forget_emulator

pytest_plugins = [
    "tests.plugins.rollback",
    "tests.plugins.accounts",
    "tests.plugins.streamiot",
    "tests.plugins.devices",
    "tests.plugins.mqtt",
    "tests.plugins.support",
    "tests.plugins.browser",
    "tests.plugins.mail",
]

REQUIRE_ALL = os.environ.get("IOTLOCK_REQUIRE_ALL_TESTS") == "1"
PG_URL = os.environ.get("TEST_DATABASE_URL", "")


def skip_or_fail(reason: str):
    """Skip when a service is missing on a user's machine; fail in CI, which has them all."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (IOTLOCK_REQUIRE_ALL_TESTS=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_database_url():
    """A private PostgreSQL database for this test run (and for each of its pytest-xdist
    workers, each a process of its own), so parallel runs never collide."""
    if not PG_URL:
        skip_or_fail("PostgreSQL tests need TEST_DATABASE_URL")
    import psycopg

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"iotlock_test_{worker}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = sa.engine.make_url(PG_URL)
    conninfo = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at TEST_DATABASE_URL is not answering: {exc}")
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_pg_schema_ready = False


class _TemplateBytecode(BytecodeCache):
    """Jinja's compiled templates kept across the run's apps: a fresh app would otherwise
    compile every template again on its first pages (~50 ms per test). Keyed by template name
    and source checksum, so an edited template is compiled anew."""

    def __init__(self):
        self.compiled = {}

    def load_bytecode(self, bucket):
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket):
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_template_bytecode = _TemplateBytecode()


def _fresh_request_globals():
    """The app fixture keeps an app context pushed, so test-client requests would share one
    flask.g (cached CSRF token, login session, membership); production gives each its own."""
    from flask import g

    for name in list(g):
        g.pop(name)


def _make_app(backend, tmp_path, request, **overrides):
    global _pg_schema_ready
    sqlite_path = tmp_path / "portal.sqlite3"
    uri = request.getfixturevalue("pg_database_url") if backend == "postgresql" else f"sqlite:///{sqlite_path}"
    settings = dict(
        SQLALCHEMY_DATABASE_URI=uri,
        SECRET_KEY="test-secret-key",
        IOTLOCK_DATA_KEY=generate_data_key(),
        INSTANCE_DIR=tmp_path,
        STREAMIOT_EMULATOR_DB=str(tmp_path / "streamiot-emulator.sqlite3"),
        VIRTUAL_GATEWAY_DIR=str(tmp_path / "virtual-gateways"),
        SERVER_NAME=None,
    )
    settings.update(overrides)
    app = create_app(TestConfig, **settings)
    app.jinja_env.bytecode_cache = _template_bytecode
    app.before_request_funcs.setdefault(None, []).insert(0, _fresh_request_globals)
    with app.app_context():
        if backend == "postgresql":
            if not _pg_schema_ready:
                db.drop_all()
                db.create_all()
                _pg_schema_ready = True
        elif app.config["SQLALCHEMY_DATABASE_URI"] == uri and not sqlite_path.exists():
            _copy_sqlite_schema(sqlite_path, request)
        else:
            db.create_all()
    return app


def _copy_sqlite_schema(path, request):
    """A fresh SQLite database with the schema: a copy of one made by create_all once per run
    (and per xdist worker), which takes a millisecond where create_all takes 20-30."""
    template = request.getfixturevalue("tmp_path_factory").getbasetemp() / "schema-template.sqlite3"
    if not template.exists():
        partial = template.with_suffix(f".{os.getpid()}.partial")
        engine = sa.create_engine(f"sqlite:///{partial}")
        db.metadata.create_all(engine)
        engine.dispose()
        partial.replace(template)
    shutil.copyfile(template, path)


def _empty_all(app):
    """Every table emptied and its id sequence restarted, as TRUNCATE ... RESTART IDENTITY
    would, in one round trip (TRUNCATE of the 31 tables: ~140 ms; a DELETE a statement:
    ~13 ms; the statements sent together: ~2 ms)."""
    statements = [f"DELETE FROM {table.name}" for table in reversed(db.metadata.sorted_tables)]
    statements += [f"SELECT setval(pg_get_serial_sequence('{table.name}', '{table.autoincrement_column.name}'), 1, false)"
                   for table in db.metadata.sorted_tables if table.autoincrement_column is not None]
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("; ".join(statements))  # no parameters: one simple-protocol query
        db.engine.dispose()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def app_overrides():
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def app(backend, request, app_overrides):
    from tests.plugins import rollback

    if rollback.is_rolled_back(request):
        yield from rollback.rolled_back_app(request, backend, app_overrides)
        return
    tmp_path = request.getfixturevalue("tmp_path")
    app = _make_app(backend, tmp_path, request, **app_overrides)
    ctx = app.app_context()
    ctx.push()
    yield app
    db.session.remove()
    ctx.pop()
    forget_emulator(app.config["STREAMIOT_EMULATOR_DB"])
    if backend == "postgresql":
        _empty_all(app)
    else:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def sqlite_app(tmp_path, request, app_overrides):
    """An app on SQLite only, for tests where the backend does not matter (e.g. browser)."""
    app = _make_app("sqlite", tmp_path, request, **app_overrides)
    ctx = app.app_context()
    ctx.push()
    yield app
    db.session.remove()
    ctx.pop()
    forget_emulator(app.config["STREAMIOT_EMULATOR_DB"])


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()

"""Rolled-back tests: one app and database per test module and backend, and every test inside
a transaction that is rolled back when it ends.

A module opts in with `pytestmark = pytest.mark.rollback`. Its tests then ask for `app`,
`client`, `auth`, `world` ... as before, and get:

* one app per backend for the whole module, with one database connection that holds an
  outer transaction (rolled back when the module ends);
* the module's shared data (the `world`: see SHARED) built once inside that transaction,
  the first time a test of the module asks for it;
* per test, a SAVEPOINT on that connection, a fresh app context (so a fresh `flask.g`) and
  `db.session` replaced by sessions joined to the connection with
  join_transaction_mode="create_savepoint" (SQLAlchemy's "joining a Session into an external
  transaction" recipe): the app's commits release savepoints of their own, its rollbacks
  roll back to them, and at the end of the test everything is rolled back to the test's
  SAVEPOINT. app.config is restored after each test too.

This is sound only while everything the test does goes through `db.session` on this one
connection. Not for tests that run the job runner or worker (they claim jobs on their own
`db.engine.connect()`), threads that touch the database, the embedded StreamIoT emulator
(its own SQLite file is not rolled back), live servers or per-module app settings
(`app_overrides`): those keep the per-test `app` of tests/conftest.py. A second database
connection during a rolled-back test fails the test (see _refuse_second_connection).
"""
import dataclasses
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from flask.globals import app_ctx
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import orm

from portal.extensions import db
from portal.models import changes

MARK = "rollback"
_STATE = pytest.StashKey()


def is_rolled_back(request) -> bool:
    return request.node.get_closest_marker(MARK) is not None


class JoinedSession(FlaskSession):
    """Flask-SQLAlchemy's session, bound to the test's connection. (Its get_bind picks the
    app's engine by bind key and would ignore `bind`, so the recipe needs this override.)"""

    def get_bind(self, *args, **kwargs):
        return self.bind


def _app_ctx_id() -> int:
    # The scope Flask-SQLAlchemy gives db.session: one session per app context.
    return id(app_ctx._get_current_object())


def _sqlite_no_implicit_begin(dbapi_connection, _record):
    # Python 3.11's sqlite3 does not BEGIN before SAVEPOINT, so a released savepoint would
    # commit for real; SQLAlchemy emits BEGIN itself instead (its SQLite docs, "Enabling
    # Non-Legacy SQLite Transactional Modes").
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn):
    conn.exec_driver_sql("BEGIN")


class ModuleDatabase:
    """One backend's app, connection and outer transaction for one test module."""

    def __init__(self, backend, tmp_path, request):
        from tests.conftest import _make_app

        self.backend = backend
        self.app = _make_app(backend, tmp_path, request)
        self._shared = {}
        with self.app.app_context():
            engine = self.engine = db.engine
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_no_implicit_begin)
                sa.event.listen(engine, "begin", _sqlite_begin)
                engine.dispose()  # the schema was created on a connection without them
            self.conn = engine.connect()
            self.outer = self.conn.begin()
            if engine.dialect.name == "postgresql":
                # Deferred triggers (the household change counts: portal/models/changes.py)
                # fire when the outer transaction commits, which it never does here: the
                # app's commits only release savepoints. Fire them at each statement instead
                # (and see _each_commit_its_own).
                self.conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")
            sa.event.listen(engine.pool, "checkout", self._refuse_second_connection)

    def _refuse_second_connection(self, _dbapi_connection, _record, _proxy):
        if self.engine.pool.checkedout() > 1:
            raise RuntimeError(
                "a second database connection in a rolled-back test (pytest.mark.rollback): it would "
                "not see the test's data and could block on it. Job runners, workers, threads and "
                "live servers need the per-test app; move this test to a module without the mark."
            )

    def sessions(self) -> orm.scoped_session:
        factory = orm.sessionmaker(
            db=db, class_=JoinedSession, query_cls=db.Query, bind=self.conn,
            join_transaction_mode="create_savepoint",
        )
        if self.engine.dialect.name == "postgresql":
            sa.event.listen(factory, "after_commit", self._each_commit_its_own)
        return orm.scoped_session(factory, scopefunc=_app_ctx_id)

    def _each_commit_its_own(self, _session):
        """A transaction moves a household's count once (changes.SETTING remembers it); the
        app's commits here are savepoints of one transaction, so each forgets it, as a real
        commit would."""
        self.conn.exec_driver_sql(f"SELECT set_config('{changes.SETTING}', '', true)")

    def shared(self, name):
        """The module's copy of SHARED[name], built once, in the outer transaction."""
        if name not in self._shared:
            assert not self.conn.in_nested_transaction(), "shared data must be built outside a test's SAVEPOINT"
            saved = db.session
            db.session = self.sessions()
            try:
                with self.app.app_context():
                    value = SHARED[name]()
                    db.session.commit()
                    db.session.expire_all()
            finally:
                db.session = saved
            # The instances are now detached and expired; tests get copies (see _attach).
            self._shared[name] = value
        return self._shared[name]

    def close(self):
        with self.app.app_context():
            sa.event.remove(self.engine.pool, "checkout", self._refuse_second_connection)
            try:
                if self.outer.is_active:
                    self.outer.rollback()
            finally:
                self.conn.close()
                self.engine.dispose()


def _build_world():
    from tests.plugins.accounts import build_world

    return build_world()


# Module-level data a rolled-back module builds once: fixture name -> builder. The builder
# runs with an app context and commits; ORM instances in what it returns (inside dicts,
# dataclasses, SimpleNamespaces, lists) are handed to each test attached to its session.
SHARED = {"world": _build_world}


def _attach(value):
    """A copy of shared data whose ORM instances belong to the current db.session: each is
    merged without loading, so its columns load on first use (as after a commit)."""
    if isinstance(value, dict):
        return type(value)((k, _attach(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_attach(v) for v in value)
    if isinstance(value, SimpleNamespace):
        return SimpleNamespace(**{k: _attach(v) for k, v in vars(value).items()})
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _attach(getattr(value, f.name)) for f in dataclasses.fields(value)})
    state = sa.inspect(value, raiseerr=False)
    if isinstance(state, orm.InstanceState):
        return db.session.merge(value, load=False)
    return value


class ModuleDatabases:
    """The module-scoped cache: one ModuleDatabase per backend, made when first needed."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.by_backend = {}

    def get(self, backend, request) -> ModuleDatabase:
        state = self.by_backend.get(backend)
        if state is None:
            tmp = self.tmp_path_factory.mktemp(f"module-{backend}")
            state = self.by_backend[backend] = ModuleDatabase(backend, tmp, request)
        return state

    def discard(self, backend):
        state = self.by_backend.pop(backend, None)
        if state is not None:
            state.close()

    def close(self):
        for backend in list(self.by_backend):
            self.discard(backend)


@pytest.fixture(scope="module")
def _module_databases(tmp_path_factory):
    databases = ModuleDatabases(tmp_path_factory)
    yield databases
    databases.close()


def rolled_back_app(request, backend, app_overrides):
    """The `app` fixture's body for rolled-back modules (a generator: yields the app)."""
    if app_overrides:
        raise pytest.UsageError(
            f"{request.node.nodeid}: app_overrides cannot apply to the module's shared app; "
            "set app.config in the test (restored after it) or drop pytest.mark.rollback"
        )
    databases = request.getfixturevalue("_module_databases")
    state = databases.get(backend, request)
    for name in SHARED:
        if name in request.fixturenames:
            state.shared(name)
    app = state.app
    config = dict(app.config)
    saved_session = db.session
    savepoint = state.conn.begin_nested()
    db.session = state.sessions()
    ctx = app.app_context()
    ctx.push()
    request.node.stash[_STATE] = state
    try:
        yield app
    finally:
        db.session.remove()
        ctx.pop()
        db.session = saved_session
        app.config.clear()
        app.config.update(config)
        if savepoint.is_active:
            savepoint.rollback()
        else:
            # Something ended the test's SAVEPOINT from outside; start the module afresh.
            databases.discard(backend)


def shared(request, name):
    """The test's attached copy of the module's shared data, or None outside rolled-back tests."""
    state = request.node.stash.get(_STATE, None)
    if state is None:
        return None
    return _attach(state.shared(name))

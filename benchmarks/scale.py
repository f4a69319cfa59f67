"""The 10,000-household benchmark of issue 15: pages and the worker at that size on PostgreSQL.

    .venv/bin/python -m benchmarks.scale                  # make bench-scale
    .venv/bin/python -m benchmarks.scale --households 20 --requests 5 --ticks 2

It makes (or reuses) two databases with benchmarks/scale_data.py, `iotlock_scale_1` and
`iotlock_scale_<N>`, on the server of BENCH_DATABASE_URL (or TEST_DATABASE_URL; default the
local `postgres`), each created, migrated and filled with COPY; one that already holds the
same size, seed and generator version is kept. Then, on each:

- pages through the Flask test client in production settings, as the probe household's
  owner (the same household in both databases) and as a support staff member: ms p50/p95
  of `--requests` requests, the database's CPU per request (the app has one connection: its
  backend's time in /proc, so PostgreSQL must run on this machine) and SQL statements per
  request; EXPLAIN (ANALYZE, BUFFERS) of every statement over SLOW_MS at the larger size;
- the worker's reader polling with 1 % of households watched (a member has a page open):
  the fast tick (reader requests, worker and database CPU, SQL statements, wall time)
  averaged over `--ticks` ticks, and one idle sweep of every channel, against a stand-in
  reader on a local port that answers every read with no messages and counts the requests;
- the worker's other periodic tasks at the larger size, each run twice on a copy of it;
- table and index sizes of the larger database.

`--skip pages|worker|tasks` leaves a part out (the idle sweep alone takes ~2 minutes at
10,000 households).

Benchmarks measure: a slow row never fails the run (exit status 0).
"""
import argparse
import contextlib
import json
import multiprocessing
import os
import random
import re
import secrets
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy import event

from config import ProductionConfig
from portal import create_app, crypto
from portal.extensions import db
from portal.jobs.handlers import reports
from portal.jobs.registry import periodic_tasks, stoppable
from portal.models import Account, IdleRead, Mailbox, User
from portal.services import device_reports
from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.support import StaffHelper, fresh_code, isolated_client

from . import scale_data

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SEED = 15
# A statement slower than this at the larger size gets its EXPLAIN printed.
SLOW_MS = 5.0
ACTIVE_SHARE = 0.01
STAFF_EMAIL = "bench-staff@support.example"
ONE_CONNECTION = {"pool_size": 1, "max_overflow": 0, "pool_recycle": 1800}


def admin_url() -> sa.URL:
    return sa.make_url(os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
                       or DEFAULT_ADMIN_URL)


def _conninfo(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def portal_app(url: str, data_key: str, **settings):
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=url, SECRET_KEY=secrets.token_hex(32),
                     IOTLOCK_DATA_KEY=data_key, INSTANCE_DIR=tempfile.mkdtemp(prefix="iotlock-scale-"),
                     STREAMIOT_URL=settings.pop("STREAMIOT_URL", "http://127.0.0.1:9"),
                     STREAMIOT_READER_URL=settings.pop("STREAMIOT_READER_URL", "http://127.0.0.1:9"), **settings)
    app.config["SESSION_COOKIE_SECURE"] = False  # the test client speaks http
    return app


# --- the database -----------------------------------------------------------------------------

@dataclass
class ScaleDatabase:
    households: int
    url: str
    data_key: str
    made_in: float | None = None  # seconds, when made by this run
    rows: dict = field(default_factory=dict)


def _meta(conninfo: str) -> dict:
    """What the generator noted in the database (empty: none, or not finished)."""
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            rows = conn.execute("SELECT key, value FROM bench_scale").fetchall()
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return {}
    return dict(rows)


def ensure_database(households: int, *, seed: int = SEED, name: str | None = None,
                    log: Callable[[str], None] = print) -> ScaleDatabase:
    """The database of this size: kept when it already holds the same data set, else made anew."""
    admin = admin_url()
    url = admin.set(database=name or f"iotlock_scale_{households}")
    conninfo = _conninfo(url)
    meta = _meta(conninfo)
    if (meta.get("households"), meta.get("seed"), meta.get("version"), meta.get("complete")) == (
            str(households), str(seed), scale_data.VERSION, "yes"):
        with portal_app(url.render_as_string(hide_password=False), meta["data_key"]).app_context():
            upgrade(directory=str(ROOT / "migrations"))  # the indexes of migrations newer than the data
            db.engine.dispose()
        return ScaleDatabase(households, url.render_as_string(hide_password=False), meta["data_key"],
                             rows=json.loads(meta.get("rows", "{}")))
    log(f"making {url.database} ({households} households) ...")
    started = time.perf_counter()
    drop_database(str(url.database))
    with psycopg.connect(_conninfo(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{url.database}"')
    data_key = crypto.generate_data_key()
    app = portal_app(url.render_as_string(hide_password=False), data_key)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        password_hash = crypto.hash_password(PASSWORD)
        db.engine.dispose()
        plans = scale_data.plan(households, seed)
        with psycopg.connect(conninfo) as conn:
            conn.execute("CREATE TABLE bench_scale (key text PRIMARY KEY, value text NOT NULL)")
            rows = scale_data.write(conn, plans, seed=seed, password_hash=password_hash)
            noted = {"households": households, "seed": seed, "version": scale_data.VERSION, "data_key": data_key,
                     "rows": json.dumps(rows)}
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO bench_scale VALUES (%s, %s)", [(k, str(v)) for k, v in noted.items()])
            conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("INSERT INTO bench_scale VALUES ('complete', 'yes')")
    made_in = time.perf_counter() - started
    log(f"made {url.database} in {made_in:.0f} s: {rows}")
    return ScaleDatabase(households, url.render_as_string(hide_password=False), data_key, made_in, rows)


def drop_database(name: str) -> None:
    with psycopg.connect(_conninfo(admin_url()), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- pages ----------------------------------------------------------------------------------

@dataclass
class Statement:
    sql: str
    parameters: object
    ms: float


@dataclass
class PageRow:
    name: str
    p50: float
    p95: float
    database_cpu_ms: float  # per request
    statements: int
    slow: list = field(default_factory=list)  # Statement over SLOW_MS


class StatementLog:
    """The SQL statements an engine runs while it is on, with each one's time."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[Statement] = []
        self._started = 0.0

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._started = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(Statement(statement, parameters, (time.perf_counter() - self._started) * 1000))

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def _probe(app) -> dict:
    with app.app_context():
        account = db.session.scalars(sa.select(Account).where(Account.name == "Quillfeather Lane 1")).one()
        boxes = db.session.execute(sa.select(Mailbox.id, Mailbox.gateway_id).where(Mailbox.account_id == account.id)
                                   .order_by(Mailbox.name)).all()
        return {"account": account.id, "box": boxes[0].id, "gateway": boxes[0].gateway_id}


def _staff_client(app):
    """A support staff member signed in with password and second factor (made anew each run)."""
    client = isolated_client(app)
    helper = StaffHelper(client)
    with app.app_context():
        db.session.execute(sa.delete(User).where(User.email == STAFF_EMAIL))
        db.session.commit()
        user = helper.create(email=STAFF_EMAIL, name="Bench")
        secret, user_id = helper.enrol(user), user.id
        db.session.remove()  # the app has one connection: give it back before each request
        helper.login(STAFF_EMAIL)
        code = fresh_code(secret, user_id)
        db.session.remove()
        assert helper.verify(secret, user_id, code=code).status_code == 302
    return client


def measure_pages(database: ScaleDatabase, requests: int) -> list[PageRow]:
    # One connection, so its backend's CPU is the database's share of the requests.
    app = portal_app(database.url, database.data_key, SQLALCHEMY_ENGINE_OPTIONS=ONE_CONNECTION)
    probe = _probe(app)
    owner = isolated_client(app)
    assert Auth(owner).login(scale_data.PROBE_EMAIL, PASSWORD).status_code == 302
    staff = _staff_client(app)
    live = {"HX-Request": "true"}
    pages = [
        ("dashboard", owner, "/gateways/", {}),
        ("gateway page", owner, f"/gateways/{probe['gateway']}", {}),
        ("box page", owner, f"/mailboxes/{probe['box']}", {}),
        ("box page's live part (htmx, no If-None-Match)", owner, f"/mailboxes/{probe['box']}", live),
        ("alerts bell (polled every 2 s)", owner, "/alerts/bell", live),
        ("alerts list", owner, "/alerts/", {}),
        ("activity, first page", owner, "/activity", {}),
        ("activity, one box, page 5", owner, f"/activity?mailbox={probe['box']}&page=5", {}),
        ("activity, box events, page 40", owner, "/activity?kind=box&page=40", {}),
        ("support search, by email", staff, "/support/?q=probe.owner%40scale", {}),
        ("support search, by box name", staff, "/support/?q=feather+post", {}),
        ("support search, a common box name", staff, "/support/?q=garage", {}),
    ]
    with app.app_context():
        engine = db.engine
        backend = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        db.session.remove()
    rows = []
    for name, client, path, headers in pages:
        for _ in range(3):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (name, response.status_code, response.get_data(as_text=True)[:300])
        with StatementLog(engine) as log:
            client.get(path, headers=headers)
        times = []
        database_cpu = _backend_cpu(backend)
        for _ in range(requests):
            started = time.perf_counter()
            client.get(path, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
        database_cpu = (_backend_cpu(backend) - database_cpu) * 1000 / requests
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        rows.append(PageRow(name, statistics.median(times), p95, database_cpu, len(log.statements),
                            [s for s in log.statements if s.ms > SLOW_MS]))
    engine.dispose()
    return rows


def explain(database: ScaleDatabase, statement: Statement) -> str:
    app = portal_app(database.url, database.data_key)
    with app.app_context(), db.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement.sql,
                                    statement.parameters).scalars().all()
        db.engine.dispose()
    return "\n".join(plan)


# --- the worker's reader polling ----------------------------------------------------------

def _serve_reader(port: int, counter, ready) -> None:
    class Reader(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as StreamIoT's reader
        disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stalls)

        def do_GET(self):
            with counter.get_lock():
                counter.value += 1
            data = b'{"messages": [], "total": 0, "offset": 0, "limit": 200}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Reader)
    ready.set()
    server.serve_forever()


@dataclass
class TickRow:
    name: str
    households: int  # watched (fast tick) or all (idle sweep)
    channels: int
    requests: float
    cpu_ms: float
    database_cpu_ms: float
    wall_ms: float
    statements: float


def _backend_cpu(pid: int) -> float:
    """Seconds of CPU a local PostgreSQL backend has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(app, engine, counter, backend: int, fn) -> tuple[int, float, float, float, int]:
    with StatementLog(engine) as log, app.app_context():
        before, database = counter.value, _backend_cpu(backend)
        cpu, wall = time.process_time(), time.perf_counter()
        fn(app)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        database = _backend_cpu(backend) - database
    return counter.value - before, cpu * 1000, database * 1000, wall * 1000, len(log.statements)


def measure_worker(database: ScaleDatabase, ticks: int, *, idle_sweep: bool = True) -> list[TickRow]:
    """Reader polling with 1 % of the households watched: `ticks` fast ticks (averaged), and
    one idle sweep of every channel."""
    fork = multiprocessing.get_context("fork")
    counter, ready = fork.Value("l", 0), fork.Event()
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = fork.Process(target=_serve_reader, args=(port, counter, ready), daemon=True)
    server.start()
    ready.wait(10)
    # One connection, as a worker's one thread uses: its backend's CPU is the database's share.
    app = portal_app(database.url, database.data_key, STREAMIOT_URL=f"http://127.0.0.1:{port}",
                     STREAMIOT_READER_URL=f"http://127.0.0.1:{port}",
                     SQLALCHEMY_ENGINE_OPTIONS=ONE_CONNECTION)
    rows = []
    try:
        with app.app_context():
            engine = db.engine
            ids = db.session.scalars(sa.select(Account.id).order_by(Account.id)).all()
            watched = random.Random(SEED).sample(list(ids), max(1, round(len(ids) * ACTIVE_SHARE)))
            db.session.execute(sa.update(Account).where(Account.watched_until.is_not(None)).values(watched_until=None))
            db.session.execute(sa.update(Account).where(Account.id.in_(watched))
                               .values(watched_until=sa.func.now() + sa.text("interval '1 hour'")))
            db.session.execute(sa.delete(IdleRead))  # every household due for the one idle sweep measured
            db.session.commit()
            fast = len(device_reports.channels_to_read_fast())
            every = len(device_reports.channels_of_linked_households())
            backend = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
            db.session.remove()
        _run(app, engine, counter, backend, reports.poll_active_channels)  # warm: imports, caches
        runs = [_run(app, engine, counter, backend, reports.poll_active_channels) for _ in range(ticks)]
        rows.append(TickRow("fast tick (every REPLY_POLL_SECONDS)", len(watched), fast,
                            *[statistics.mean(r[i] for r in runs) for i in range(5)]))
        if idle_sweep:
            rows.append(TickRow("idle sweep (every IDLE_POLL_SECONDS)", len(ids), every,
                                *_run(app, engine, counter, backend, reports.poll_all_channels)))
        with app.app_context():
            db.session.execute(sa.update(Account).where(Account.watched_until.is_not(None)).values(watched_until=None))
            db.session.commit()
            db.engine.dispose()
    finally:
        server.terminate()
        server.join(5)
    return rows


@dataclass
class TaskRow:
    name: str
    every: float
    cpu_ms: float
    database_cpu_ms: float
    wall_ms: float
    statements: int


def measure_tasks(database: ScaleDatabase) -> list[TaskRow]:
    """The worker's other periodic tasks (alert scans, PIN rules, housekeeping), each run twice
    (what it finds at first, then what is left a moment later) on a copy of the database
    (they change what they find), with every gateway heard from within the minute."""
    name = f"{sa.make_url(database.url).database}_tasks"
    drop_database(name)
    with psycopg.connect(_conninfo(admin_url()), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{sa.make_url(database.url).database}"')
    url = sa.make_url(database.url).set(database=name).render_as_string(hide_password=False)
    app = portal_app(url, database.data_key,
                     SQLALCHEMY_ENGINE_OPTIONS=ONE_CONNECTION)
    counter = multiprocessing.Value("l", 0)  # no StreamIoT here: nothing counts requests
    rows = []
    try:
        with app.app_context():
            engine = db.engine
            db.session.execute(sa.text(
                "UPDATE gateways SET last_heartbeat_at = now() - random() * interval '60 seconds'"))
            db.session.commit()
            backend = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
            db.session.remove()
        skipped = {reports.poll_active_channels, reports.poll_all_channels}
        for task in periodic_tasks():
            every = task.interval(app.config)
            if every is None or task.fn in skipped:
                continue
            for run in ("first run", "run again"):
                with stoppable(None):
                    _requests, cpu, database_cpu, wall, statements = _run(app, engine, counter, backend, task.fn)
                rows.append(TaskRow(f"{task.name.rsplit('.', 2)[-2]}.{task.fn.__name__}, {run}", every, cpu,
                                    database_cpu, wall, statements))
        engine.dispose()
    finally:
        drop_database(name)
    return rows


# --- sizes ----------------------------------------------------------------------------------

def table_sizes(database: ScaleDatabase) -> list[tuple[str, int, int, int]]:
    """(table, rows, table MB, index MB) of the largest tables."""
    url = sa.make_url(database.url)
    with psycopg.connect(_conninfo(url)) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'bench_scale' "
            "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 10").fetchall()
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    mb = 1024 * 1024
    return [(name, n, round(t / mb), round(i / mb)) for name, n, t, i in rows] + [
        ("(whole database)", 0, round(total[0] / mb) if total else 0, 0)]


# --- the report -----------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page")
    parser.add_argument("--ticks", type=int, default=5, help="fast ticks averaged")
    parser.add_argument("--no-idle-sweep", action="store_true", help="skip the sweep of every channel")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--skip", choices=["pages", "worker", "tasks"], action="append", default=[],
                        help="leave out a part of the measurement")
    args = parser.parse_args(argv)

    small, large = ensure_database(1), ensure_database(args.households)
    print(f"\ndatabases: {sa.make_url(small.url).database}, {sa.make_url(large.url).database}; rows of the large one: "
          f"{large.rows}")
    if args.generate_only:
        return 0
    if "pages" not in args.skip:
        report_pages(small, large, args.requests)
    if "worker" not in args.skip:
        report_worker(small, large, args.ticks, idle_sweep=not args.no_idle_sweep)
    if "tasks" not in args.skip:
        report_tasks(large)
    print(f"\n## Sizes, {large.households:,} households\n")
    print("| table | rows | table MB | indexes MB |\n|---|---|---|---|")
    for name, n, table_mb, index_mb in table_sizes(large):
        print(f"| {name} | {n:,} | {table_mb:,} | {index_mb:,} |")
    return 0


def report_pages(small: ScaleDatabase, large: ScaleDatabase, requests: int) -> None:
    pages = {size.households: measure_pages(size, requests) for size in (small, large)}
    print(f"\n## Pages: probe household (2 gateways, 6 boxes, 30 PINs, {scale_data.PROBE_EVENTS} events), "
          f"Flask test client, production settings, {requests} requests each\n")
    print(f"| page | 1 household p50 / p95 ms | {large.households:,} households p50 / p95 ms | database CPU ms "
          f"(1 / {large.households:,}) | statements (1 / {large.households:,}) |")
    print("|---|---|---|---|---|")
    for one, many in zip(pages[1], pages[large.households], strict=True):
        print(f"| {one.name} | {one.p50:.1f} / {one.p95:.1f} | {many.p50:.1f} / {many.p95:.1f} | "
              f"{one.database_cpu_ms:.1f} / {many.database_cpu_ms:.1f} | {one.statements} / {many.statements} |")
    for row in pages[large.households]:
        for statement in row.slow:
            plan = explain(large, statement)
            took = re.search(r"Execution Time: ([0-9.]+) ms", plan)
            if took and float(took.group(1)) < SLOW_MS:
                # On a loaded machine a fast statement can wait for a core: its plan says so.
                print(f"\n({row.name}: a statement took {statement.ms:.1f} ms in the page, {took.group(1)} ms "
                      f"explained: {statement.sql.split(chr(10))[0][:80]}...)")
                continue
            print(f"\n### {row.name}: a statement of {statement.ms:.1f} ms\n\n```\n{statement.sql}\n\n{plan}\n```")


def report_worker(small: ScaleDatabase, large: ScaleDatabase, ticks: int, *, idle_sweep: bool) -> None:
    print(f"\n## Worker, reader polling, {ACTIVE_SHARE:.0%} of households watched, stand-in reader "
          "(no messages)\n")
    print("| size | pass | households | channels | reader requests | worker CPU ms | database CPU ms | wall ms "
          "| SQL statements |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in (small, large):
        for tick in measure_worker(size, ticks, idle_sweep=idle_sweep):
            print(f"| {size.households:,} | {tick.name} | {tick.households:,} | {tick.channels:,} | "
                  f"{tick.requests:,.0f} | {tick.cpu_ms:,.0f} | {tick.database_cpu_ms:,.0f} | {tick.wall_ms:,.0f} | "
                  f"{tick.statements:,.0f} |")



def report_tasks(large: ScaleDatabase) -> None:
    print(f"\n## Worker, other periodic tasks at {large.households:,} households, each run twice\n")
    print("| task | every s | worker CPU ms | database CPU ms | wall ms | SQL statements |")
    print("|---|---|---|---|---|---|")
    for task in measure_tasks(large):
        print(f"| {task.name} | {task.every:g} | {task.cpu_ms:,.0f} | {task.database_cpu_ms:,.0f} | "
              f"{task.wall_ms:,.0f} | {task.statements:,} |")


if __name__ == "__main__":
    sys.exit(main())

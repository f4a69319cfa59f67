"""The serving ratio table of issue 15: the portal's pages against a bare Flask hello-world,
both under the same gunicorn settings, measured in one run with A and B interleaved.

    .venv/bin/python -m benchmarks.serving            # SQLite, and PostgreSQL when
    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres ...  # (or TEST_DATABASE_URL)

`make bench` runs it after the pytest benchmarks. Each row is `--rounds` pairs of
(hello-world for `--seconds`, then the page for `--seconds`) at `--connections` closed-loop
connections; the table shows the median req/s of each side and their ratio, and PASS/FAIL
against the issue's target. A miss never fails the run (exit status 0): benchmarks measure.

The portal runs in production mode (argon2id at production cost, htmx from its own copy), on a
fresh database seeded with three households made directly in the tables (1 box; 10 boxes x 5
PINs; 50 x 10, as tests/integration/test_query_counts.py builds them). StreamIoT is a
stand-in on a local port that answers everything after a set delay; the worker
(`flask --app wsgi worker`) runs only for the rows that say so.

Two rows measure the bare stack (benchmarks/floor_app.py, a third server under the same
settings on the same database): a minimal logged-in page and a minimal logged-in 304 on
Flask, flask-login and Flask-SQLAlchemy. They carry no target; they show where a target
sits against what the stack costs before the product adds anything.

The load generator is this process: threads with http.client (gunicorn's sync workers close
every connection, so each request is a new one, for both apps alike). It shares the machine's
cores with the servers, so absolute figures are low; the ratios are what the targets are.
"""
import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from benchmarks import floor_app
from config import ProductionConfig
from portal import create_app
from portal.crypto import generate_data_key
from portal.extensions import db
from portal.services import accounts
from tests.integration.test_query_counts import _household_with
from tests.plugins.accounts import PASSWORD
from tests.processes import stop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIZES = {"1": (1, 1), "10x5": (10, 5), "50x10": (50, 10)}
POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
# A polled part drawn because something changed: htmx asks with the version of the part it
# shows (the part carries it in its hx-headers), which no longer holds.
STALE = {"If-None-Match": '"a version that no longer holds"'}


# --- the StreamIoT stand-in ----------------------------------------------------------------

class _StandIn(BaseHTTPRequestHandler):
    delay = 0.0

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(type(self).delay)
        if self.path.startswith("/tokens"):
            status, body = 201, {"token": "bench-token"}
        elif "/messages" in self.path and self.command == "GET":
            status, body = 200, {"messages": [], "total": 0, "offset": 0, "limit": 100}
        else:
            status, body = 202, {}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- servers ------------------------------------------------------------------------------

def _wait_for(port: int, path: str = "/", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


def _gunicorn(app_path: str, port: int, env: dict, workdir: Path, workers: int,
              timed_into: Path | None = None) -> subprocess.Popen:
    """`timed_into`: the workers write each request's own time there (microseconds, status,
    path), which the other servers do not pay for."""
    # An empty config file of our own: a gunicorn.conf.py in the project must not change the figures.
    empty = workdir / "gunicorn-bench.conf.py"
    empty.write_text("")
    timed = ["--access-logfile", str(timed_into), "--access-logformat", "%(D)s %(s)s %(U)s"] if timed_into else []
    return subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(empty), "--workers", str(workers), "--worker-class", "sync",
         "--bind", f"127.0.0.1:{port}", "--backlog", "2048", "--timeout", "60", "--chdir", str(ROOT), *timed,
         app_path],
        env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / f"gunicorn-{port}.log", "w"))  # noqa: SIM115


def _quantiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of `values`; (0, 0) for none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0, 0.0
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _worker_times(log: Path, path: str) -> list[float]:
    """Seconds each GET of `path` answered 200 took inside a worker, from the timed access
    log: from the request read to the answer written, without the wait in the listen queue."""
    times = []
    for line in log.read_text().splitlines():
        micros, status, logged = (line.split(" ", 2) + ["", ""])[:3]
        if status == "200" and logged == path and micros.isdigit():
            times.append(int(micros) / 1e6)
    return times


def server_cpu(master: subprocess.Popen) -> float:
    """CPU seconds (user + system) used so far by a gunicorn master's workers. Unlike req/s,
    a request's CPU does not shrink when other jobs share the cores: the steadier figure on a
    busy machine (Linux /proc; 0.0 elsewhere)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    except OSError:
        return 0.0
    for pid in children:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# --- the load generator -------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    latencies: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    finished: list = field(default_factory=list)  # seconds from the start, as latencies

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def fivexx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s == "error" or (isinstance(s, int) and s >= 500))


def _one(port: int, method: str, path: str, headers: dict, body: bytes | None, timeout: float = 30.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, response.getheaders(), data
    finally:
        conn.close()


def load(port: int, make_request, seconds: float, connections: int, rate: float | None = None) -> Run:
    """Closed loop at `connections` (or open loop at `rate` req/s, latency counted from each
    request's planned start so queueing shows). make_request(worker, i) -> (method, path,
    headers, body)."""
    run = Run(seconds)
    lock = threading.Lock()
    start = time.monotonic() + 0.05
    end = start + seconds

    def worker(w: int):
        i = 0
        while True:
            planned = start + (i * connections + w) / rate if rate else time.monotonic()
            if planned >= end:
                return
            if rate:
                time.sleep(max(0.0, planned - time.monotonic()))
            method, path, headers, body = make_request(w, i)
            try:
                status, response_headers, _data = _one(port, method, path, headers, body)
            except (OSError, http.client.HTTPException):
                status, response_headers = "error", []
            if getattr(make_request, "seen", None):
                make_request.seen(dict(response_headers))
            done = time.monotonic()
            if done <= end + (30 if rate else 0):
                with lock:
                    run.latencies.append(done - planned)
                    run.finished.append(done - start)
                    run.statuses[status] += 1
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return run


# --- a browser's cookies, logged in ---------------------------------------------------------

class Browser:
    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def headers(self, **extra) -> dict:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        headers.update(extra)
        return headers

    def request(self, method, path, body: bytes | None = None, **extra):
        headers = self.headers(**extra)
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers, data = _one(self.port, method, path, headers, body)
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        return status, dict(response_headers), data.decode()

    def csrf(self, path: str) -> str:
        status, _headers, html = self.request("GET", path)
        match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
        assert status == 200 and match, (status, html[:300])
        return match.group(1)

    def login(self, email: str) -> None:
        token = self.csrf("/login")
        body = _form(csrf_token=token, email=email, password=PASSWORD)
        status, headers, _ = self.request("POST", "/login", body)
        assert status in (302, 303), (status, headers)


def _form(**values) -> bytes:
    return urllib.parse.urlencode(values).encode()


# --- seeding ---------------------------------------------------------------------------------

def seed(env: dict) -> dict:
    """The three households, made straight in the tables; returns emails and ids."""
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=env["DATABASE_URL"], SECRET_KEY=env["SECRET_KEY"],
                     IOTLOCK_DATA_KEY=env["IOTLOCK_DATA_KEY"], INSTANCE_DIR=env["IOTLOCK_INSTANCE_DIR"])
    app.config["SESSION_COOKIE_SECURE"] = False  # the test client below speaks http
    seeded = {}
    with app.app_context():
        db.create_all()
        for name, (boxes, pins) in SIZES.items():
            email = f"bench-{name}@example.com"
            user, gateway, mailbox = _household_with(
                lambda e, n: accounts.register(e, PASSWORD, n), email, boxes, pins)
            seeded[name] = {"email": email, "gateway": str(gateway.id), "mailbox": str(mailbox.id)}
        db.session.remove()
        engine = db.engine
    # Outside any app context: each test request gets its own, as under gunicorn.
    seeded["queries"] = _query_counts(app, engine, seeded)
    engine.dispose()
    return seeded


def _query_counts(app, engine, seeded) -> dict:
    """SQL statements of one request of each page, per household size (test client)."""
    counts: dict[str, dict[str, int]] = {}
    for name in SIZES:
        client = app.test_client()
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                          client.get("/login").get_data(as_text=True)).group(1)
        response = client.post("/login", data={"csrf_token": token, "email": seeded[name]["email"],
                                               "password": PASSWORD})
        assert response.status_code == 302, response.status_code
        mailbox = seeded[name]["mailbox"]
        for page, path, headers in (("dashboard, drawn", "/gateways/", {}),
                                    ("dashboard, part kept", "/gateways/", {}),
                                    ("fragment", f"/mailboxes/{mailbox}", {**POLL, **STALE}),
                                    ("settings", "/settings", {})):
            client.get(path, headers=headers)
            if page.endswith("drawn"):
                app.extensions["drawn_parts"].clear()  # as if the household had changed since
            statements = []

            def count(conn, cursor, statement, parameters, context, executemany, into=statements):
                into.append(statement)

            sa.event.listen(engine, "before_cursor_execute", count)
            try:
                response = client.get(path, headers=headers)
            finally:
                sa.event.remove(engine, "before_cursor_execute", count)
            assert response.status_code == 200, (path, response.status_code)
            counts.setdefault(page, {})[name] = len(statements)
    return counts


# --- the table -----------------------------------------------------------------------------

TARGETS = {
    "logged-in trivial page": 0.50,
    "dashboard 10x5": 0.25,
    "polling fragment, changed": 0.40,
    "polling fragment, unchanged": 0.60,
    "add-PIN POST, worker stopped": 0.25,
    "add-PIN POST, worker running, StreamIoT 2 s late": 0.25,
}


def _cpu_per_request(server: subprocess.Popen, port: int, make_request, args) -> tuple[Run, float]:
    before = server_cpu(server)
    run = load(port, make_request, args.seconds, args.connections)
    return run, (server_cpu(server) - before) / max(1, len(run.latencies))


def _pair_rows(servers: tuple, rows, args) -> list[dict]:
    """Each row: rounds of (hello-world, page), medians of each: req/s, and the servers' CPU
    per request. servers: (portal process, portal port, hello process, hello port). A row is
    (title, make_request), served by the portal, or (title, make_request, (process, port))."""
    _portal, _portal_port, hello, hello_port = servers
    results = []
    for title, make_request, *elsewhere in rows:
        portal, portal_port = elsewhere[0] if elsewhere else servers[:2]
        hellos, pages, hello_cpu, page_cpu, statuses = [], [], [], [], Counter()
        for _ in range(args.rounds):
            run, cpu = _cpu_per_request(hello, hello_port, lambda w, i: ("GET", "/", {}, None), args)
            hellos.append(run.rate)
            hello_cpu.append(cpu)
            run, cpu = _cpu_per_request(portal, portal_port, make_request, args)
            pages.append(run.rate)
            page_cpu.append(cpu)
            statuses.update(run.statuses)
        h, p = statistics.median(hellos), statistics.median(pages)
        hc, pc = statistics.median(hello_cpu), statistics.median(page_cpu)
        result = {"row": title, "hello": h, "page": p, "ratio": p / h if h else 0.0, "statuses": dict(statuses),
                  "hello_cpu_ms": hc * 1000, "page_cpu_ms": pc * 1000, "cpu_ratio": hc / pc if pc else 0.0}
        results.append(result)
        print(f"  {title}: {p:.0f} req/s vs {h:.0f} ({result['ratio']:.1%}); server CPU {pc * 1000:.2f} ms vs "
              f"{hc * 1000:.2f} ms per request ({result['cpu_ratio']:.1%}) {dict(statuses)}", flush=True)
    return results


def measure(backend: str, database_url: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"iotlock-bench-{backend}-"))
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    streamiot = f"http://127.0.0.1:{stand_in.server_address[1]}"
    env = dict(os.environ, IOTLOCK_ENV="production", DATABASE_URL=database_url, SECRET_KEY=secrets.token_hex(32),
               IOTLOCK_DATA_KEY=generate_data_key(), IOTLOCK_INSTANCE_DIR=str(workdir), STREAMIOT_URL=streamiot,
               STREAMIOT_READER_URL=f"{streamiot}/reader", VIRTUAL_GATEWAYS="off", IOTLOCK_EMBEDDED_WORKER="off",
               PYTHONPATH=str(ROOT))
    env.pop("TEST_DATABASE_URL", None)
    print(f"\n== {backend}: seeding", flush=True)
    seeded = seed(env)
    floor_app.prepare(database_url)
    portal_port, hello_port, floor_port = _free_port(), _free_port(), _free_port()
    portal = _gunicorn("wsgi:app", portal_port, env, workdir, args.workers)
    hello = _gunicorn("benchmarks.hello_app:app", hello_port, env, workdir, args.workers)
    floor = _gunicorn("benchmarks.floor_app:create_app()", floor_port, env, workdir, args.workers)
    worker = None
    try:
        _wait_for(portal_port, "/login")
        _wait_for(hello_port)
        _wait_for(floor_port, "/login")
        floor_browser = Browser(floor_port)
        floor_browser.request("GET", "/login")
        browsers = {}
        for name in SIZES:
            browsers[name] = Browser(portal_port)
            browsers[name].login(seeded[name]["email"])
        small, mid, big = (browsers[n] for n in SIZES)
        anonymous = Browser(portal_port)
        anonymous.request("GET", "/login")
        fragment_path = f"/mailboxes/{seeded['10x5']['mailbox']}"
        shown = {"etag": mid.request("GET", fragment_path, **POLL)[1].get("ETag") or ""}

        def unchanged(w, i):
            # As htmx polls: with the version of the part it shows, new after each 200.
            return ("GET", fragment_path, mid.headers(**POLL, **{"If-None-Match": shown["etag"]}), None)

        def follow(headers):
            if headers.get("ETag"):
                shown["etag"] = headers["ETag"]

        unchanged.seen = follow  # type: ignore[attr-defined]
        add_path = f"/mailboxes/{seeded['10x5']['mailbox']}/pins"
        add_token = mid.csrf(f"/mailboxes/{seeded['10x5']['mailbox']}")
        counter = iter(range(10**7))

        def get(browser, path, **extra):
            return lambda w, i: ("GET", path, browser.headers(**extra), None)

        def add_pin(w, i):
            body = _form(csrf_token=add_token, label="Bench", digits=f"{next(counter) + 10**7}", kind="always")
            return ("POST", add_path, mid.headers(**{"Content-Type": "application/x-www-form-urlencoded"}), body)

        at_floor = (floor, floor_port)
        rows = [
            ("bare stack: logged-in page", get(floor_browser, "/page"), at_floor),
            ("bare stack: logged-in 304", get(floor_browser, "/poll", **{"If-None-Match": '"v1"'}), at_floor),
            ("logged-in trivial page", get(small, "/household/link-state")),
            ("anonymous login page", get(anonymous, "/login")),
            ("account settings", get(small, "/settings")),
            ("dashboard 1 box", get(small, "/gateways/")),
            ("dashboard 10x5", get(mid, "/gateways/")),
            ("dashboard 50x10", get(big, "/gateways/")),
            # As htmx polls after a change: with the version it showed, which no longer holds.
            ("polling fragment, changed", get(mid, fragment_path, **POLL, **STALE)),
            ("polling fragment, unchanged", unchanged),
            ("add-PIN POST, worker stopped", add_pin),
        ]
        print(f"== {backend}: {args.rounds} x ({args.seconds} s hello-world, {args.seconds} s page), "
              f"{args.connections} connections, {args.workers} sync workers", flush=True)
        servers = (portal, portal_port, hello, hello_port)
        results = _pair_rows(servers, rows, args)

        # p99 against p50 at half the dashboard's peak (open loop, so queueing shows), in the
        # conditions the peak was measured in: before the worker starts draining the add-PIN
        # rows' thousands of jobs against a StreamIoT that answers 2 s late. Served by a
        # second portal whose workers time each request, so that a tail can be told apart:
        # inside a worker's request, or around it (the listen queue, the machine, the client).
        timed_log = workdir / "timed-access.log"
        timed_port = _free_port()
        timed = _gunicorn("wsgi:app", timed_port, env, workdir, args.workers, timed_into=timed_log)
        try:
            _wait_for(timed_port, "/login")
            watcher = Browser(timed_port)
            watcher.login(seeded["10x5"]["email"])
            watcher.request("GET", "/gateways/")  # each worker draws the part once, as above
            watcher.request("GET", "/gateways/")
            peak = next(r["page"] for r in results if r["row"] == "dashboard 10x5")
            steady = load(timed_port, get(watcher, "/gateways/"), max(args.seconds * 2, 4), args.connections * 2,
                          rate=peak / 2)
        finally:
            stop(timed)
        p50, p99 = _quantiles(steady.latencies)
        slowest = slowest_span(steady, p99)
        worker_p50, worker_p99 = _quantiles(_worker_times(timed_log, "/gateways/"))

        _StandIn.delay = 2.0
        worker = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(workdir / "worker.log", "w"))  # noqa: SIM115
        time.sleep(1.0)
        results += _pair_rows(servers, [("add-PIN POST, worker running, StreamIoT 2 s late", add_pin)], args)


        # Zero 5xx at any load, login included: logins and pages at once.
        logins = [Browser(portal_port) for _ in range(2)]
        tokens = [b.csrf("/login") for b in logins]

        def mixed(w, i):
            if w < 2:
                body = _form(csrf_token=tokens[w], email=seeded["1"]["email"], password=PASSWORD)
                return ("POST", "/login", logins[w].headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
                        body)
            return [get(mid, "/gateways/"), get(mid, fragment_path, **POLL), add_pin][i % 3](w, i)

        burst = load(portal_port, mixed, args.burst_seconds, 8)
    finally:
        for process in (worker, portal, hello, floor):
            if process is not None:
                stop(process)
        stand_in.shutdown()
        _StandIn.delay = 0.0
    return {"backend": backend, "rows": results, "p50": p50, "p99": p99, "half_peak": peak / 2,
            "worker_p50": worker_p50, "worker_p99": worker_p99, "slowest_span": slowest,
            "steady_seconds": steady.seconds,
            "burst": {"requests": len(burst.latencies), "fivexx": burst.fivexx(), "statuses": dict(burst.statuses)},
            "queries": seeded["queries"]}


def slowest_span(run: Run, p99: float) -> float:
    """Seconds between the first and the last answer of the requests at or over `p99`. A
    few hundred milliseconds or less in a run of several seconds: they were one stall (the
    whole machine paused, every request then in flight waited), not slow requests spread
    over the run."""
    ended = [done for latency, done in zip(run.latencies, run.finished, strict=True) if latency >= p99]
    return max(ended) - min(ended) if ended else 0.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(report: dict) -> None:
    rows = {r["row"]: r for r in report["rows"]}
    print(f"\n### {report['backend']}\n")
    print("| request | req/s | hello-world req/s | share | target | server CPU ms/request (hello-world) | CPU share |")
    print("|---|---|---|---|---|---|---|")
    for title, r in rows.items():
        target = TARGETS.get(title)
        mark = f"≥ {target:.0%} {verdict(r['ratio'] >= target)}" if target else ""
        if title == "dashboard 50x10":
            ten = rows["dashboard 10x5"]["page"]
            mark = f"≥ 80 % of 10x5: {r['page'] / ten:.0%} {verdict(r['page'] >= 0.8 * ten)}"
        if title == "add-PIN POST, worker running, StreamIoT 2 s late":
            stopped = rows["add-PIN POST, worker stopped"]["page"]
            mark += f"; {r['page'] / stopped:.0%} of worker stopped"
        fivexx = sum(n for s, n in r["statuses"].items() if s == "error" or (isinstance(s, int) and s >= 500))
        note = f" ({fivexx} 5xx/errors)" if fivexx else ""
        print(f"| {title} | {r['page']:.0f}{note} | {r['hello']:.0f} | {r['ratio']:.1%} | {mark} | "
              f"{r['page_cpu_ms']:.2f} ({r['hello_cpu_ms']:.2f}) | {r['cpu_ratio']:.1%} |")
    p50, p99 = report["p50"], report["p99"]
    print(f"| p99 vs p50 at half the 10x5 dashboard's peak ({report['half_peak']:.0f} req/s) | "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms | | {p99 / p50 if p50 else 0:.1f} x | "
          f"≤ 3 x {verdict(p50 > 0 and p99 <= 3 * p50)} |")
    print(f"| the slowest 1 % of them answered within | {report['slowest_span'] * 1000:.0f} ms of each other "
          f"(of {report['steady_seconds']:.0f} s) | | | |")
    w50, w99 = report["worker_p50"], report["worker_p99"]
    print(f"| the same requests as the workers timed them (the listen queue and the client left out) | "
          f"p50 {w50 * 1000:.1f} ms, p99 {w99 * 1000:.1f} ms | | {w99 / w50 if w50 else 0:.1f} x | |")
    burst = report["burst"]
    print(f"| 5xx, logins + pages + add-PIN at 8 connections | {burst['fivexx']} of {burst['requests']} "
          f"{burst['statuses']} | | | 0 {verdict(burst['fivexx'] == 0)} |")
    for page, counts in report["queries"].items():
        same = len(set(counts.values())) == 1
        print(f"| SQL queries per {page}, 1 / 10x5 / 50x10 | {' / '.join(str(counts[n]) for n in SIZES)} | | | "
              f"constant {verdict(same)} |")
    print("\nThe dashboard rows ask for an unchanged dashboard again, as a household does: each gunicorn "
          "worker draws its part once and then takes it as kept (portal/htmx.py DrawnParts). "
          "Drawn afresh, it costs what `python -m benchmarks.profile_pages` shows as \"dashboard 10x5, drawn\".")


def _pg_database(admin_url: str):
    name = f"iotlock_bench_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(admin_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name, url.set(database=name).render_as_string(hide_password=False), engine


@contextlib.contextmanager
def postgres(admin_url: str):
    name, url, engine = _pg_database(admin_url)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    reports = []
    if args.backend in ("sqlite", "both"):
        path = Path(tempfile.mkdtemp(prefix="iotlock-bench-db-")) / "bench.sqlite3"
        reports.append(measure("sqlite", f"sqlite:///{path}", args))
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if args.backend in ("postgresql", "both") and pg:
        with postgres(pg) as url:
            reports.append(measure("postgresql", url, args))
    for report in reports:
        print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a request's time goes: cProfile over the hot pages of issue 15, in production mode
on the serving benchmark's seeded SQLite (or BENCH_DATABASE_URL's PostgreSQL) database.

    .venv/bin/python -m benchmarks.profile_pages [--requests 300] [--backend postgresql]

For each page: the milliseconds of one request (under the profiler, so slower than served;
and the CPU milliseconds of one request without it),
the share of the named costs the issue lists (inclusive time of the functions that carry
them), and the top functions by own time. `--dump DIR` keeps the raw .prof files.
"""
import argparse
import cProfile
import os
import pstats
import re
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from benchmarks.serving import POLL, STALE, postgres, seed
from config import ProductionConfig
from portal import create_app
from portal.crypto import generate_data_key
from portal.extensions import db
from portal.models import ActivityEvent, Command, Gateway
from tests.plugins.accounts import PASSWORD

# (label, file fragment, function name): inclusive time, as a share of the request.
COSTS = [
    ("user + session lookup (auth._load_user)", "portal/auth.py", "_load_user"),
    ("household lookup (auth.current_membership)", "portal/auth.py", "current_membership"),
    ("url_for", "flask/app.py", "url_for"),
    ("template rendering (render_template)", "flask/templating.py", "render_template"),
    ("SQL compile + cache key", "sqlalchemy/sql/compiler.py", "__init__"),
    ("statement cache key", "sqlalchemy/sql/cache_key.py", "_generate_cache_key"),
    ("ORM row loading (instances)", "sqlalchemy/orm/loading.py", "instances"),
    ("uuid.UUID()", "uuid.py", "__init__"),
    ("driver: sqlite3 execute", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ("driver: psycopg execute", "psycopg/cursor.py", "execute"),
    ("pool checkout (pre-ping)", "sqlalchemy/pool/base.py", "_checkout"),
    ("session cookie save", "flask/sessions.py", "save_session"),
    ("WTForms field rendering", "wtforms/fields/core.py", "__call__"),
]


def _login(client, email):
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)
    response = client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert response.status_code == 302, response.status_code


# Status codes the "unchanged" polls got (a 200 there: the part's version ended meanwhile).
ANSWERED: dict[int, int] = {}


def _age(app, hours: int = 1) -> None:
    """Everything the seed made happened an hour ago, as on a household's ordinary day: times
    shown in words ("3 seconds ago") then turn by the minute, not every few seconds, and the
    unchanged polls measure the 304 they mostly get, not a redraw."""
    with app.app_context():
        for model, column in ((ActivityEvent, ActivityEvent.occurred_at), (Gateway, Gateway.last_heartbeat_at),
                              (Command, Command.created_at)):
            rows = db.session.execute(sa.select(model.id, column).where(column.is_not(None))).all()
            for row_id, moment in rows:
                db.session.execute(sa.update(model).where(model.id == row_id)
                                   .values({column: moment - timedelta(hours=hours)}))
        db.session.commit()
        db.session.remove()


def _pages(client, seeded):
    mailbox, gateway = seeded["10x5"]["mailbox"], seeded["10x5"]["gateway"]
    # A poll that draws its part: as htmx asks after a change (the mark rides with the login's statement).
    stale = {**POLL, **STALE}
    html = client.get(f"/mailboxes/{mailbox}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)

    def unchanged(url):
        shown = {"etag": ""}

        def request():
            # As htmx polls: with the version of the part it shows, new after each 200.
            response = client.get(url, headers={**POLL, "If-None-Match": shown["etag"]})
            shown["etag"] = response.headers.get("ETag", shown["etag"])
            ANSWERED[response.status_code] = ANSWERED.get(response.status_code, 0) + 1
            return response
        return request

    counter = iter(range(10**7))
    logged_in = client.get_cookie("session").value

    def add_pin():
        # The cookie the browser had before (a browser shows the flash on the next page).
        client.set_cookie("session", logged_in)
        return client.post(f"/mailboxes/{mailbox}/pins", data={
            "csrf_token": token, "label": "Bench", "digits": str(10**7 + next(counter)), "kind": "always"})

    return {
        "settings": lambda: client.get("/settings"),
        "polling fragment 10x5": lambda: client.get(f"/mailboxes/{mailbox}", headers=stale),
        "polling fragment 10x5, unchanged": unchanged(f"/mailboxes/{mailbox}"),
        "box events poll 10x5": lambda: client.get(f"/mailboxes/{mailbox}/box", headers=stale),
        "box events poll 10x5, unchanged": unchanged(f"/mailboxes/{mailbox}/box"),
        "activity feed poll 10x5": lambda: client.get("/activity", headers=stale),
        "activity feed poll 10x5, unchanged": unchanged("/activity"),
        "dashboard poll 10x5": lambda: client.get("/gateways/", headers=stale),
        "dashboard poll 10x5, unchanged": unchanged("/gateways/"),
        "gateway page poll 10x5": lambda: client.get(f"/gateways/{gateway}", headers=stale),
        "gateway page poll 10x5, unchanged": unchanged(f"/gateways/{gateway}"),
        "bell poll": lambda: client.get("/alerts/bell", headers=stale),
        "bell poll, unchanged": unchanged("/alerts/bell"),
        "add-PIN POST 10x5": add_pin,
    }


def profile(database_url: str, requests: int, dump: Path | None, only: str = "") -> None:
    workdir = Path(tempfile.mkdtemp(prefix="iotlock-profile-"))
    env = {"DATABASE_URL": database_url, "SECRET_KEY": secrets.token_hex(32), "IOTLOCK_DATA_KEY": generate_data_key(),
           "IOTLOCK_INSTANCE_DIR": str(workdir)}
    seeded = seed(env)
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=database_url, SECRET_KEY=env["SECRET_KEY"],
                     IOTLOCK_DATA_KEY=env["IOTLOCK_DATA_KEY"], INSTANCE_DIR=str(workdir),
                     STREAMIOT_URL="http://127.0.0.1:9", STREAMIOT_READER_URL="http://127.0.0.1:9/reader")
    app.config["SESSION_COOKIE_SECURE"] = False  # the test client speaks http
    _age(app)
    big, mid = app.test_client(), app.test_client()
    _login(big, seeded["50x10"]["email"])
    _login(mid, seeded["10x5"]["email"])
    def drawn(url):
        # As if the household had changed since: no part kept (portal/htmx.py DrawnParts).
        def request():
            app.extensions["drawn_parts"].clear()
            return mid.get(url)
        return request

    pages = {"logged-in trivial page": lambda: mid.get("/household/link-state"),
             "dashboard 10x5": lambda: mid.get("/gateways/"),
             "dashboard 10x5, drawn": drawn("/gateways/")}
    pages.update(_pages(mid, seeded))
    pages["dashboard 50x10"] = lambda: big.get("/gateways/")
    pages["box page 10x5"] = lambda: mid.get(f"/mailboxes/{seeded['10x5']['mailbox']}")
    pages["box page 50x10"] = lambda: big.get(f"/mailboxes/{seeded['50x10']['mailbox']}")
    pages["gateway page 50x10"] = lambda: big.get(f"/gateways/{seeded['50x10']['gateway']}")
    for name, request in pages.items():
        if only not in name:
            continue
        for _ in range(20):
            response = request()
        assert response.status_code in (200, 303, 304), (name, response.status_code)
        # CPU time, not wall time: the machine is shared, and a busy neighbour stretches walls.
        started_cpu = time.process_time()
        for _ in range(requests):
            request()
        cpu = (time.process_time() - started_cpu) / requests * 1000
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for _ in range(requests):
            request()
        profiler.disable()
        per_request = (time.perf_counter() - started) / requests * 1000
        answered = ", ".join(f"{n} x {code}" for code, n in sorted(ANSWERED.items()))
        ANSWERED.clear()
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        print(f"\n### {name}: {cpu:.2f} ms CPU per request ({per_request:.2f} ms under the profiler)"
              + (f"; answered {answered}" if answered else "") + "\n")
        print("| cost | share |\n|---|---|")
        entries = stats.stats  # type: ignore[attr-defined]
        for label, fragment, function in COSTS:
            inclusive = sum(ct for (file, _line, fn), (_cc, _nc, _tt, ct, _callers) in entries.items()
                            if fn == function and fragment in file)
            calls = sum(nc for (file, _line, fn), (_cc, nc, _tt, _ct, _callers) in entries.items()
                        if fn == function and fragment in file)
            if inclusive:
                print(f"| {label} ({calls / requests:.0f} calls) | {inclusive / total:.1%} |")
        print("\nTop own time:")
        top = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:12]
        for (file, line, fn), (_cc, nc, tt, _ct, _callers) in top:
            short = "/".join(file.split("/")[-2:])
            print(f"  {tt / total:6.1%}  {nc / requests:7.1f}/req  {short}:{line} {fn}")
        if dump:
            dump.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(str(dump / f"{name.replace(' ', '_')}.prof"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--only", default="", help="profile the pages whose name holds this text")
    args = parser.parse_args(argv)
    if args.backend == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="iotlock-profile-db-")) / "profile.sqlite3"
        profile(f"sqlite:///{path}", args.requests, args.dump, args.only)
    else:
        url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
        assert url, "set BENCH_DATABASE_URL (or TEST_DATABASE_URL) for PostgreSQL"
        with postgres(url) as database:
            profile(database, args.requests, args.dump, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

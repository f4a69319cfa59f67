"""The IoTLock portal: create_app() builds the Flask application."""
import logging
import os
import time
from pathlib import Path

from flask import Flask, current_app, g, render_template, request, send_from_directory, url_for
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from sqlalchemy import Engine, event, orm
from sqlalchemy import exc as exc_module
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from config import BASE_DIR, config_from_env
from portal import api, auth, filters, forms, health, htmx, logredact, pgcursor
from portal.account import bp as account_bp
from portal.alerts import bp as alerts_bp
from portal.api import problems
from portal.cli import register
from portal.cookies import VerifiedCookieSessions
from portal.crypto import HasherBusy, generate_data_key
from portal.extensions import csrf, db, login_manager, migrate
from portal.gateways import bp as gateways_bp
from portal.jobs import handlers as _job_handlers  # noqa: F401  (registers every job kind)
from portal.jobs import virtual_gateways
from portal.mailboxes import bp as mailboxes_bp
from portal.mailboxes.routes import box_url
from portal.members import bp as members_bp
from portal.models import PROTOCOL_SEALED
from portal.models.base import utcnow
from portal.push import bp as push_bp
from portal.services import alerts, deliveries, presence, push
from portal.streamiot.deployment import device_urls
from portal.support import bp as support_bp
from portal.urls import LazyBuilderRule, fixed_link, row_link
from portal.webhooks import bp as webhooks_bp

log = logging.getLogger(__name__)
# Status codes with a page of their own in templates/errors/.
ERROR_PAGES = (400, 403, 404, 405, 413, 429, 500)


class Portal(Flask):
    """Flask, asking once per function whether it is a coroutine: Flask asks for every
    request hook and view on every request (inspect's code flags, 3 % of a small page).
    Its rules write their URL builders when first used (LazyBuilderRule)."""

    url_rule_class = LazyBuilderRule

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync_functions: dict = {}

    def ensure_sync(self, func):
        sync = self._sync_functions.get(func)
        if sync is None:
            sync = self._sync_functions[func] = super().ensure_sync(func)
        return sync


def create_app(config_object=None, **overrides) -> Flask:
    config_object = config_object or config_from_env()
    app = Portal(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=str(config_object.INSTANCE_DIR),
    )
    app.config.from_object(config_object)
    app.config.update(overrides)
    _load_secrets(app)
    _warn_insecure_cookies(app)
    if not app.config.get("STREAMIOT_READER_URL"):
        app.config["STREAMIOT_READER_URL"] = (
            "embedded-reader" if app.config["STREAMIOT_URL"] == "embedded" else ""
        )

    if app.config.get("TRUSTED_PROXIES"):

        n = app.config["TRUSTED_PROXIES"]
        # Replacing wsgi_app is how Flask's docs add WSGI middleware; mypy sees only a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    logredact.init_app(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security_headers(app)
    register_template_helpers(app)
    register_commands(app)
    register_jobs(app)
    return app


def _load_secrets(app: Flask) -> None:
    """Production refuses to start without its secrets; elsewhere they are generated once
    into instance/ (git-ignored) and kept, so sessions, encrypted data and browsers'
    push subscriptions (bound to the VAPID key) survive restarts. Production without
    VAPID_PRIVATE_KEY runs with push alerts off."""

    required = app.config.get("REQUIRED_SECRETS", ())
    if required:
        missing = [name for name in required if not app.config.get(name)]
        if missing:
            raise RuntimeError(
                "IoTLock will not start in production without these settings: "
                + ", ".join(missing)
                + ". Set them in the environment (see README, Configuration)."
            )
        return
    # INSTANCE_DIR as this app was given it (tests give each app its own folder).
    instance = Path(app.config.get("INSTANCE_DIR") or app.instance_path)
    for name, make in (("SECRET_KEY", lambda: os.urandom(32).hex()), ("IOTLOCK_DATA_KEY", generate_data_key),
                       ("VAPID_PRIVATE_KEY", push.new_vapid_key)):
        if app.config.get(name):
            continue
        instance.mkdir(parents=True, exist_ok=True)
        path = instance / name.lower()
        if not path.exists():
            path.write_text(make())
            path.chmod(0o600)
        app.config[name] = path.read_text().strip()


def _warn_insecure_cookies(app: Flask) -> None:
    """Production sends its cookies over https only, unless SESSION_COOKIE_SECURE (or
    REMEMBER_COOKIE_SECURE) says off: that is honoured, and said loudly at every start."""
    if app.config.get("ENV_NAME") != "production":
        return
    for name in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if not app.config.get(name, True):
            log.warning("%s is off in production: browsers will send the login cookie over plain "
                        "http too. Turn it on unless every browser reaches the portal through https.", name)


def register_jobs(app: Flask) -> None:
    """Every job kind's handler is registered by importing portal.jobs.handlers (top of
    this file); the virtual gateways offer the services their keypad when they are on."""
    virtual_gateways.init_app(app)
    app.config["STREAMIOT_DEVICE_URL"], app.config["STREAMIOT_DEVICE_READER_URL"] = device_urls(app.config)


def register_extensions(app: Flask) -> None:
    app.session_interface = VerifiedCookieSessions()
    forms.draw_attributes_fast()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "account.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = None  # server-side sessions do this job (portal/auth.py)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _tune_sqlite(db.engine)
        else:
            _check_idle_connections(db.engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
            _reads_without_transaction(app, db.engine)
            pgcursor.use_on(db.engine)
    if app.config.get("RAISE_ON_LAZY_LOAD"):
        _raise_on_lazy_load()


def _tune_sqlite(engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def _check_idle_connections(engine, idle_seconds: float) -> None:
    """Instead of pool_pre_ping's round trip on every checkout: a connection back in the pool
    for less than `idle_seconds` (any busy server) is used as it is; one idle longer (a
    database restarted, a backend terminated, a firewall's idle cut) is pinged first, and a
    dead one is replaced before the request sees it (the pool retries the checkout)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.time()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.time() - since < idle_seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()  # the ping's own transaction: the request starts clean
        except Exception as exc:  # noqa: BLE001  (whatever the driver raises for a dead connection)
            raise exc_module.DisconnectionError("idle connection is dead") from exc


# Set on a GET's connection by _reads_without_transaction, so only those are switched back.
_READS_FIRST = "iotlock_reads_first"
_LOCKING = ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE")


def _plain_read(statement: str) -> bool:
    head = statement.lstrip()[:6].upper()
    return head == "SELECT" and not any(lock in statement.upper() for lock in _LOCKING)


def _reads_without_transaction(app: Flask, engine) -> None:
    """PostgreSQL: a GET or HEAD reads in autocommit, with no BEGIN and ROLLBACK around its
    statements (a trivial page: 3 round trips -> 1). At READ COMMITTED each statement reads
    its own snapshot inside a transaction too, so the reads see what they saw before. The
    first statement that writes, locks or streams (a session's last_seen_at, a household
    watched, a key download's log, the CSV export's cursor) switches the connection back to
    a transaction before it runs: from there on the request commits or rolls back as a
    whole, as before."""

    @app.before_request
    def _autocommit_reads():
        # Only a session that has no connection yet (the app context of a request, not one a
        # test or a command holds open, nor a session bound to one connection).
        session = db.session()
        if request.method in ("GET", "HEAD") and request.endpoint != "static" \
                and not session.in_transaction() and isinstance(session.get_bind(), Engine):
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT", _READS_FIRST: True})

    @event.listens_for(engine, "before_cursor_execute")
    def _transaction_before_writing(conn, _cursor, statement, _parameters, context, _executemany):
        # A streamed result (yield_per: the CSV export) is a server-side cursor, which lives
        # in a transaction too.
        streamed = context is not None and context.execution_options.get("stream_results", False)
        if conn.get_execution_options().get(_READS_FIRST) and (streamed or not _plain_read(statement)):
            dbapi_connection = conn.connection.dbapi_connection
            if dbapi_connection.autocommit:
                dbapi_connection.autocommit = False  # the statement below begins a transaction


_lazy_guard_installed = False


def _raise_on_lazy_load() -> None:
    """Tests: any relationship loaded lazily with SQL raises, so a page's query count
    cannot grow with the number of devices without a test noticing."""
    global _lazy_guard_installed
    if _lazy_guard_installed:
        return
    _lazy_guard_installed = True

    @event.listens_for(orm.Session, "do_orm_execute")
    def _add_raiseload(state):
        if state.is_select and not state.is_relationship_load and not state.is_column_load:
            state.statement = state.statement.options(orm.raiseload("*", sql_only=True))


def register_blueprints(app: Flask) -> None:

    app.register_blueprint(account_bp)
    app.register_blueprint(members_bp, url_prefix="/members")
    app.register_blueprint(gateways_bp, url_prefix="/gateways")
    app.register_blueprint(mailboxes_bp, url_prefix="/mailboxes")
    app.register_blueprint(support_bp, url_prefix="/support")
    app.register_blueprint(webhooks_bp, url_prefix="/webhooks")
    app.register_blueprint(push_bp, url_prefix="/push")
    app.register_blueprint(alerts_bp, url_prefix="/alerts")
    app.register_blueprint(health.bp)
    api.init_app(app)
    app.add_url_rule("/manifest.webmanifest", "manifest", _manifest)
    # At the root, so its scope is the whole site (a worker's scope is its own folder).
    app.add_url_rule("/sw.js", "service_worker", _service_worker)


def _manifest():
    """The web app manifest (installable on a phone's home screen; no service worker)."""
    response = send_from_directory(current_app.static_folder or "static", "manifest.webmanifest",
                                   mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-store"  # like every answer that is not a static file
    return response


def _service_worker():
    """The service worker that shows push alerts (static/js/sw.js), served from the root."""
    response = send_from_directory(current_app.static_folder or "static", "js/sw.js",
                                   mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-store"  # like every answer that is not a static file
    return response


def register_errorhandlers(app: Flask) -> None:
    def render_error(error):
        if problems.is_api_request():
            return problems.from_http_error(error)
        code = getattr(error, "code", 500) or 500
        if code not in ERROR_PAGES:
            code = 500 if code >= 500 else 400
        description = getattr(error, "description", None)
        if description == getattr(type(error), "description", None):
            description = None  # Werkzeug's stock wording: the page's own words instead
        return render_template(f"errors/{code}.html", description=description), code

    for code in ERROR_PAGES:
        app.register_error_handler(code, render_error)

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return (
            render_template(
                "errors/400.html",
                description="This form expired or was sent from another page. "
                "Go back, reload the page and try again.",
            ),
            400,
        )

    @app.errorhandler(HasherBusy)
    def hasher_busy(error):
        # A login burst queues for the password hasher; one that waited too long is asked to
        # come back (login and sign-up show their form again instead: account/routes.py).
        db.session.rollback()
        return (render_template("errors/429.html", description=error.message), 429,
                {"Retry-After": str(error.retry_after)})

    @app.errorhandler(Exception)
    def unexpected(error):
        if isinstance(error, HTTPException):
            return render_error(error)
        db.session.rollback()
        if problems.is_api_request():
            return problems.unexpected()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_template("errors/500.html"), 500


def register_security_headers(app: Flask) -> None:
    cdn = "https://cdn.jsdelivr.net" if app.config["HTMX_FROM_CDN"] else ""
    csp = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {cdn}".strip(),
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )

    # Built once; no view sets any of these, so they are added, not replaced (a lookup of
    # each name in the answer's headers was 1.5 % of a small page).
    fixed = [
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    with_hsts = [*fixed, ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")]

    @app.after_request
    def headers(response):
        response.headers.extend(with_hsts if app.config.get("HSTS") else fixed)
        if request.endpoint != "static":
            # Every answer but a static file is for one user and may hold a secret (the
            # CSV export, a settings file, a private key, PIN digits): no browser or proxy
            # keeps a copy. A view that sets its own Cache-Control keeps it.
            response.headers.setdefault("Cache-Control", "no-store")
        response.vary.add("HX-Request")
        return response

    @app.after_request
    def household_watched(response):
        # A household page was served (not streamed: a CSV export still reads as it sends).
        account = g.get("account")
        if account is not None and response.status_code < 400 and not response.is_streamed:
            presence.keep_watched(account)
        return response


def register_template_helpers(app: Flask) -> None:
    # States are compared with their enums and shown through one helper per kind
    # (portal/services/deliveries.py): templates never spell a state word.
    app.jinja_env.globals.update(
        DeviceState=deliveries.DeviceState,
        PinState=deliveries.PinState,
        CommandState=deliveries.CommandState,
        can_withdraw=deliveries.can_withdraw,
        PROTOCOL_SEALED=PROTOCOL_SEALED,
        row_link=row_link,
        box_url=box_url,
        url_for=fixed_link,
        csrf_token=forms.csrf_token,
    )

    @app.context_processor
    def inject():
        return {
            "current_membership": auth.current_membership,
            "all_memberships": auth.all_memberships,
            "unread_alerts": alerts.unread_count,
            "now": utcnow,
            # Over Flask-WTF's context processor, which hands templates generate_csrf itself.
            "csrf_token": forms.csrf_token,
        }

    @app.template_global()
    def htmx_script() -> Markup:
        if app.config["HTMX_FROM_CDN"]:
            version = app.config["HTMX_VERSION"]
            return Markup(
                f'<script src="https://cdn.jsdelivr.net/npm/htmx.org@{version}/dist/htmx.min.js" '
                f'integrity="{app.config["HTMX_SRI"]}" crossorigin="anonymous"></script>'
            )

        src = url_for("static", filename=f"vendor/htmx-{app.config['HTMX_VERSION']}.min.js")
        return Markup(f'<script src="{src}"></script>')


    filters.register(app)


def register_commands(app: Flask) -> None:

    register(app)

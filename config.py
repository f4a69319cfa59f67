"""Settings for the IoTLock portal: every value comes from the environment, with
embedded defaults that let `make run` work on a fresh machine."""
import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("IOTLOCK_INSTANCE_DIR", BASE_DIR / "instance"))


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "on", "true", "yes"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


class Config:
    ENV_NAME = "development"
    INSTANCE_DIR = INSTANCE_DIR

    SECRET_KEY = os.environ.get("SECRET_KEY")
    IOTLOCK_DATA_KEY = os.environ.get("IOTLOCK_DATA_KEY")

    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'iotlock.sqlite3'}"
    )
    # No ping per request (a round trip on PostgreSQL): connections are replaced after 30
    # minutes, and one idle longer than DATABASE_PING_AFTER_IDLE_SECONDS is checked before
    # use (portal/__init__.py, _check_idle_connections).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_recycle": 1800}
    DATABASE_PING_AFTER_IDLE_SECONDS = _float("DATABASE_PING_AFTER_IDLE_SECONDS", 10.0)

    # StreamIoT. "embedded" runs the emulator in process, behind a requests adapter.
    STREAMIOT_URL = os.environ.get("STREAMIOT_URL", "embedded")
    STREAMIOT_READER_URL = os.environ.get("STREAMIOT_READER_URL", "")
    # What a physical gateway is told in its settings download, when it reaches StreamIoT by
    # other addresses than the portal does (defaults: STREAMIOT_URL / STREAMIOT_READER_URL).
    STREAMIOT_PUBLIC_URL = os.environ.get("STREAMIOT_PUBLIC_URL", "")
    STREAMIOT_PUBLIC_READER_URL = os.environ.get("STREAMIOT_PUBLIC_READER_URL", "")
    STREAMIOT_USER_DOMAIN = os.environ.get("STREAMIOT_USER_DOMAIN", "iotlock.invalid")
    STREAMIOT_ADMIN_EMAIL = os.environ.get("STREAMIOT_ADMIN_EMAIL", "")
    STREAMIOT_ADMIN_PASSWORD = os.environ.get("STREAMIOT_ADMIN_PASSWORD", "")
    STREAMIOT_CONNECT_TIMEOUT = _float("STREAMIOT_CONNECT_TIMEOUT", 3.05)
    STREAMIOT_READ_TIMEOUT = _float("STREAMIOT_READ_TIMEOUT", 10.0)
    STREAMIOT_EMULATOR_DB = os.environ.get(
        "STREAMIOT_EMULATOR_DB", str(INSTANCE_DIR / "streamiot-emulator.sqlite3")
    )
    STREAMIOT_EMULATOR_TOKEN_TTL = _int("STREAMIOT_EMULATOR_TOKEN_TTL", 10 * 3600)

    VIRTUAL_GATEWAYS = _flag("VIRTUAL_GATEWAYS", True)
    VIRTUAL_GATEWAY_DIR = os.environ.get(
        "VIRTUAL_GATEWAY_DIR", str(INSTANCE_DIR / "virtual-gateways")
    )
    # The worker (job runner and reply reader) runs as a thread inside `flask serve`.
    EMBEDDED_WORKER = _flag("IOTLOCK_EMBEDDED_WORKER", True)

    JOB_MAX_ATTEMPTS = _int("JOB_MAX_ATTEMPTS", 12)
    JOB_BACKOFF_BASE = _float("JOB_BACKOFF_BASE", 1.0)
    JOB_BACKOFF_CAP = _float("JOB_BACKOFF_CAP", 300.0)
    JOB_LEASE_SECONDS = _int("JOB_LEASE_SECONDS", 60)
    JOB_POLL_SECONDS = _float("JOB_POLL_SECONDS", 1.0)
    # While StreamIoT can't be reached, one probe goes after this wait, doubled after each
    # failed probe up to the cap (portal/jobs/platform.py).
    PLATFORM_PROBE_BASE = _float("PLATFORM_PROBE_BASE", 0.5)
    PLATFORM_PROBE_CAP = _float("PLATFORM_PROBE_CAP", 5.0)
    UNLOCK_TTL_SECONDS = _int("UNLOCK_TTL_SECONDS", 60)
    HEARTBEAT_WINDOW_SECONDS = _int("HEARTBEAT_WINDOW_SECONDS", 120)
    # The dashboard lists each gateway's first boxes, with a link to the rest on the
    # gateway's page: a glance stays a glance, and the page costs the same at 10 boxes as at 500.
    DASHBOARD_BOXES_PER_GATEWAY = _int("DASHBOARD_BOXES_PER_GATEWAY", 10)
    # Drawn parts a process keeps while their version holds (portal/htmx.py DrawnParts): one
    # a person for the dashboard; its part is 2.3 KB for 1 box, 15 KB for 50 boxes (10 listed).
    DRAWN_PARTS_KEPT = _int("DRAWN_PARTS_KEPT", 256)
    # A box page lists its PINs this many at a time (its live part is drawn every few
    # seconds: whole, a box of 500 PINs cost 125 ms of CPU a poll).
    BOX_PINS_PER_PAGE = _int("BOX_PINS_PER_PAGE", 25)
    # Each worker process records that it is alive every WORKER_BEAT_SECONDS; /healthz says
    # "worker": "stale" when no worker did in the last WORKER_STALE_SECONDS.
    WORKER_BEAT_SECONDS = _float("WORKER_BEAT_SECONDS", 5.0)
    WORKER_STALE_SECONDS = _float("WORKER_STALE_SECONDS", 60.0)
    # Answers to commands and the boxes of households someone is looking at are read every
    # REPLY_POLL_SECONDS; the boxes of every other household every IDLE_POLL_SECONDS. A
    # household counts as looked at for WATCH_SECONDS after its last page or live refresh.
    REPLY_POLL_SECONDS = _float("REPLY_POLL_SECONDS", 1.0)
    IDLE_POLL_SECONDS = _float("IDLE_POLL_SECONDS", 30.0)
    WATCH_SECONDS = _float("WATCH_SECONDS", 60.0)
    # StreamIoT's MQTT adapter (mqtt://host:port): `flask mqtt-subscriber` processes receive
    # device messages as they arrive, each for one of MQTT_SHARDS shards of the households.
    # Empty: no MQTT, the reader alone. A household a subscriber holds is read by the reader
    # every IDLE_POLL_SECONDS_WITH_MQTT only (the safety net), unless a command waits.
    STREAMIOT_MQTT_URL = os.environ.get("STREAMIOT_MQTT_URL", "")
    MQTT_SHARDS = _int("MQTT_SHARDS", 1)
    IDLE_POLL_SECONDS_WITH_MQTT = _float("IDLE_POLL_SECONDS_WITH_MQTT", 300.0)
    # How often a subscriber looks for linked, unlinked and changed households, and how long
    # its word that a household is subscribed holds (it renews it every 15 s).
    MQTT_RESCAN_SECONDS = _float("MQTT_RESCAN_SECONDS", 5.0)
    MQTT_VOUCH_SECONDS = _float("MQTT_VOUCH_SECONDS", 60.0)
    # `make run`: the embedded emulator runs Mosquitto as its MQTT adapter when installed.
    EMBEDDED_MQTT = _flag("IOTLOCK_EMBEDDED_MQTT", True)
    HOUSEKEEPING_SECONDS = _float("HOUSEKEEPING_SECONDS", 3600.0)
    # How often the worker keeps PIN rules: ended PINs taken off their boxes, and on seed
    # gateways PINs taken off and put back at the edges of their hours.
    PIN_SCHEDULE_SECONDS = _float("PIN_SCHEDULE_SECONDS", 15.0)

    HTMX_FROM_CDN = _flag("HTMX_FROM_CDN", False)
    HTMX_VERSION = "2.0.11"
    # Subresource Integrity of static/vendor/htmx-2.0.11.min.js (a test keeps them equal).
    HTMX_SRI = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"

    # Sessions: signed cookie carrying a server-side session id (see portal/auth.py).
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_SECURE = _flag("REMEMBER_COOKIE_SECURE", SESSION_COOKIE_SECURE)
    SESSION_IDLE_TIMEOUT = timedelta(minutes=_int("SESSION_IDLE_MINUTES", 120))
    SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=_int("SESSION_ABSOLUTE_HOURS", 12))
    STAFF_IDLE_TIMEOUT = timedelta(minutes=15)
    # The cookie lives as long as the longest login session may and is signed when its
    # content changes, not again on every answer: the server-side session keeps the idle
    # and absolute timeouts, so a re-signed cookie per request (an eighth of a small page's
    # time) bought nothing.
    PERMANENT_SESSION_LIFETIME = SESSION_ABSOLUTE_TIMEOUT
    SESSION_REFRESH_EACH_REQUEST = False
    REAUTH_WINDOW = timedelta(minutes=5)
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)

    WTF_CSRF_TIME_LIMIT = None  # bound to the session instead, which has its own timeouts
    WTF_CSRF_HEADERS = ["X-CSRFToken"]

    # argon2id cost: OWASP's m=19 MiB, t=2, p=1. One lane per hash, so a login takes one
    # core, not all of them; hashes made with other parameters still verify and are
    # re-made with these at the next login.
    ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 2)
    ARGON2_MEMORY_COST = _int("ARGON2_MEMORY_COST", 19456)
    ARGON2_PARALLELISM = _int("ARGON2_PARALLELISM", 1)
    # At most this many password hashes (checks or new ones) run at once on this machine,
    # across every process (portal/crypto.py: lock files in INSTANCE_DIR); the others wait
    # their turn, and one that waited PASSWORD_HASH_WAIT_SECONDS gets "try again" (429).
    PASSWORD_HASH_CONCURRENCY = _int("PASSWORD_HASH_CONCURRENCY", max(1, (os.cpu_count() or 2) // 2))
    PASSWORD_HASH_WAIT_SECONDS = _float("PASSWORD_HASH_WAIT_SECONDS", 10.0)

    LOGIN_MAX_FAILURES_PER_ACCOUNT = _int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)
    LOGIN_MAX_FAILURES_PER_ADDRESS = _int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
    # New accounts per client address per window (same window as login throttling).
    SIGNUPS_PER_ADDRESS = _int("SIGNUPS_PER_ADDRESS", 10)
    LOGIN_THROTTLE_WINDOW = timedelta(minutes=_int("LOGIN_THROTTLE_MINUTES", 15))

    INVITE_TTL = timedelta(hours=72)
    # "Forgot your password?": a link works once, this long; requests per address typed
    # and per client address in the login throttle's window.
    PASSWORD_RESET_TTL = timedelta(minutes=_int("PASSWORD_RESET_MINUTES", 60))
    PASSWORD_RESETS_PER_ACCOUNT = _int("PASSWORD_RESETS_PER_ACCOUNT", 3)
    PASSWORD_RESETS_PER_ADDRESS = _int("PASSWORD_RESETS_PER_ADDRESS", 10)

    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = _int("MAIL_PORT", 587)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    MAIL_USE_TLS = _flag("MAIL_USE_TLS", True)
    MAIL_TIMEOUT = _float("MAIL_TIMEOUT", 10.0)
    MAIL_SENDER = os.environ.get("MAIL_SENDER", "IoTLock <no-reply@iotlock.invalid>")
    # A mail server that refused an email is tried again after this, doubling to an hour.
    MAIL_RETRY_SECONDS = _float("MAIL_RETRY_SECONDS", 30.0)

    # Web Push (VAPID, RFC 8292): the application server's P-256 private key, base64url of its
    # 32 bytes; generated once into instance/ outside production, where push is off without it.
    VAPID_PRIVATE_KEY = os.environ.get("VAPID_PRIVATE_KEY")
    # Who push services contact about this sender: a mailto: (or https:) address.
    VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:no-reply@iotlock.invalid")
    # How long a push service keeps an alert for a browser that is offline, and how long a
    # push service may take to answer.
    PUSH_TTL_SECONDS = _int("PUSH_TTL_SECONDS", 24 * 3600)
    PUSH_TIMEOUT = _float("PUSH_TIMEOUT", 10.0)  # each send, whole (portal/egress.py)
    # Push services on private addresses: never, except a test's own on 127.0.0.1.
    PUSH_ALLOW_PRIVATE_FOR_TESTS = False

    # Alerts (portal/services/alerts.py, alert_detection.py): a burst of wrong PINs is
    # ALERT_WRONG_PINS within ALERT_WRONG_PIN_MINUTES; a box is "left open" after
    # ALERT_LEFT_OPEN_MINUTES, a gateway "offline" after ALERT_OFFLINE_MINUTES; a PIN is
    # "about to expire" ALERT_PIN_EXPIRING_HOURS before its end. The worker looks every
    # ALERT_SCAN_SECONDS. Emails and pushes give up after ALERT_MAX_ATTEMPTS tries.
    ALERT_WRONG_PINS = _int("ALERT_WRONG_PINS", 3)
    ALERT_WRONG_PIN_MINUTES = _int("ALERT_WRONG_PIN_MINUTES", 5)
    ALERT_LEFT_OPEN_MINUTES = _int("ALERT_LEFT_OPEN_MINUTES", 10)
    ALERT_OFFLINE_MINUTES = _int("ALERT_OFFLINE_MINUTES", 10)
    ALERT_PIN_EXPIRING_HOURS = _int("ALERT_PIN_EXPIRING_HOURS", 24)
    ALERT_SCAN_SECONDS = _float("ALERT_SCAN_SECONDS", 30.0)
    ALERT_MAX_ATTEMPTS = _int("ALERT_MAX_ATTEMPTS", 12)

    PUBLIC_URL = os.environ.get("PUBLIC_URL", "")  # used in emailed and printed links when set
    # The port `flask serve` (and `make run`) listens on; links printed by the staff
    # command use it when PUBLIC_URL is not set.
    PORT = _int("PORT", 5000)
    # Number of trusted reverse proxies in front of the portal (X-Forwarded-For/-Proto/-Host);
    # 0 trusts none. Login throttling per client address needs the real address.
    TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
    # Largest request body accepted (Flask answers 413 past it). Every form of the portal is
    # a few kilobytes; 1 MiB leaves room and keeps anonymous posts from filling memory.
    MAX_CONTENT_LENGTH = _int("MAX_REQUEST_BYTES", 1024 * 1024)
    HSTS = False
    # The API (/api/v1): requests per token per window, counted on the token's row.
    API_RATE_LIMIT = _int("API_RATE_LIMIT", 120)
    API_RATE_WINDOW_SECONDS = _int("API_RATE_WINDOW_SECONDS", 60)
    # Webhooks (portal/services/webhooks.py). http:// URLs only where a deployment says so
    # (never in production); addresses inside private networks never, except for the
    # test's own receiver on 127.0.0.1 (WEBHOOK_ALLOW_PRIVATE_FOR_TESTS, off everywhere
    # else). Retries back off from RETRY_BASE, doubling up to RETRY_CAP, for RETRY_WINDOW.
    WEBHOOK_ALLOW_HTTP = _flag("WEBHOOK_ALLOW_HTTP", True)
    WEBHOOK_ALLOW_PRIVATE_FOR_TESTS = False
    WEBHOOK_CONNECT_TIMEOUT = _float("WEBHOOK_CONNECT_TIMEOUT", 3.05)
    WEBHOOK_READ_TIMEOUT = _float("WEBHOOK_READ_TIMEOUT", 5.0)
    # The whole attempt, however slowly the endpoint drips its answer.
    WEBHOOK_TOTAL_SECONDS = _float("WEBHOOK_TOTAL_SECONDS", 10.0)
    WEBHOOK_RETRY_BASE = _float("WEBHOOK_RETRY_BASE", 30.0)
    WEBHOOK_RETRY_CAP = _float("WEBHOOK_RETRY_CAP", 3 * 3600.0)
    WEBHOOK_RETRY_WINDOW = timedelta(hours=_int("WEBHOOK_RETRY_HOURS", 24))
    # A rotated-out secret keeps signing (beside the new one) this long.
    WEBHOOK_ROTATION_OVERLAP = timedelta(hours=24)
    # Tests set this to raise on lazy loads, so pages prove a fixed query count.
    RAISE_ON_LAZY_LOAD = False


class DevelopmentConfig(Config):
    pass


class ProductionConfig(Config):
    ENV_NAME = "production"
    # On unless SESSION_COOKIE_SECURE says off (e.g. behind a proxy that speaks plain http
    # to browsers on a private network); create_app() logs a warning then.
    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = _flag("REMEMBER_COOKIE_SECURE", SESSION_COOKIE_SECURE)
    HSTS = True
    # htmx from the portal's own origin, as in development: no third party sees each page
    # view, and pages work where the CDN can't be reached. HTMX_FROM_CDN=on: the pinned
    # version from jsdelivr, with Subresource Integrity.
    HTMX_FROM_CDN = _flag("HTMX_FROM_CDN", False)
    VIRTUAL_GATEWAYS = _flag("VIRTUAL_GATEWAYS", False)
    EMBEDDED_WORKER = _flag("IOTLOCK_EMBEDDED_WORKER", False)
    EMBEDDED_MQTT = False
    REQUIRED_SECRETS = ("SECRET_KEY", "IOTLOCK_DATA_KEY")
    WEBHOOK_ALLOW_HTTP = False  # https only, whatever the environment says


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    # Cheap argon2id in tests only; still argon2id.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 8
    ARGON2_PARALLELISM = 1
    VIRTUAL_GATEWAYS = False
    EMBEDDED_WORKER = False
    EMBEDDED_MQTT = False
    STREAMIOT_MQTT_URL = ""  # tests that use MQTT start a broker of their own
    RAISE_ON_LAZY_LOAD = True
    JOB_BACKOFF_BASE = 0.0
    # A probe may go at once, as retries do: tests that drain the queue need no waiting.
    PLATFORM_PROBE_BASE = 0.0


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "test": TestConfig,
}


def config_from_env():
    return CONFIGS[os.environ.get("IOTLOCK_ENV", "development")]

"""gunicorn settings for the portal (gunicorn reads this file from the working directory;
`make serve` passes it explicitly). Every value can be changed from the environment; the
README's "Production" section lists them. Command-line flags still win over this file."""
import multiprocessing
import os

from portal.logredact import TEXT_ACCESS_FORMAT


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


_cores = multiprocessing.cpu_count()

# Where to listen: BIND wins ("0.0.0.0:8000", "unix:/run/iotlock.sock"), else PORT on the
# loopback interface (a reverse proxy or load balancer on the same host forwards to it).
bind = [os.environ.get("BIND") or f"127.0.0.1:{_int('PORT', 8000)}"]

# gthread, `cores` processes of 4 threads each (measured on 2 cores against sync with
# 2*cores+1 processes, README "Production"): the same throughput on pages, half the
# processes' memory, and a request waiting on the database or on a password-hash slot
# holds a thread, not a whole process. WEB_CONCURRENCY / GUNICORN_THREADS change it.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = _int("WEB_CONCURRENCY", max(2, min(_cores, 8)))
threads = _int("GUNICORN_THREADS", 4)

# A request taking longer than this is killed (its worker restarted); password checks
# wait at most PASSWORD_HASH_WAIT_SECONDS (10 s) for a slot, well inside it.
timeout = _int("GUNICORN_TIMEOUT", 30)
# SIGTERM: requests in flight get this long to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Each worker process is replaced after about this many requests (jitter spreads the
# restarts, so the processes do not all restart at once): bounds any slow leak.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# Heartbeat files in memory, not on a disk that may stall (containers mount /dev/shm).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# gunicorn's control socket (gunicornc) only where asked for: at its default path, two
# servers on one machine would fight over one socket.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Proxies whose X-Forwarded-Proto gunicorn believes (the app's own ProxyFix, set by
# TRUSTED_PROXIES, handles X-Forwarded-For/-Host for the client address).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log: one line per request on stdout, with the request id (X-Request-Id) and the
# time taken; ACCESS_LOG_FORMAT=json writes JSON lines instead, ACCESS_LOG_HEALTHZ=off
# leaves /healthz out, ACCESS_LOG=<path> writes to a file, ACCESS_LOG=off writes none.
_access = os.environ.get("ACCESS_LOG", "-")
accesslog = None if _access.lower() in {"off", "none", ""} else _access
access_log_format = TEXT_ACCESS_FORMAT
logger_class = "portal.logredact.AccessLogger"
errorlog = os.environ.get("ERROR_LOG", "-")
loglevel = os.environ.get("LOG_LEVEL", "info")

# The portal's own log records (portal.*, sqlalchemy warnings, ...) go to stderr with the
# id of the request they were written in. gunicorn's own loggers keep their handlers
# (errorlog, accesslog above): "loggers" is left empty on purpose.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.logredact.RequestIdFilter"}},
    "formatters": {
        "portal": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s rid=%(request_id)s: %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
    },
    "handlers": {
        "portal": {
            "class": "logging.StreamHandler",
            "formatter": "portal",
            "filters": ["request_id"],
            "stream": "ext://sys.stderr",
        },
    },
    "root": {"level": loglevel.upper(), "handlers": ["portal"]},
    "loggers": {},
}

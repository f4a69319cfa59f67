"""`make serve`: the portal as production runs it, in one command. Applies the migrations,
then runs gunicorn (gunicorn.conf.py), JOB_WORKERS job workers (`flask --app wsgi
worker`) and, when STREAMIOT_MQTT_URL is set, MQTT_SHARDS MQTT subscribers (`flask --app
wsgi mqtt-subscriber --shard i/n`), each a process of its own. Ctrl+C or SIGTERM stops them all (SIGTERM to each,
SIGKILL to one still running after STOP_GRACE_SECONDS); when one of them ends by itself,
the others are stopped too and the exit status says so, for the supervisor above (systemd,
a container runtime) to restart the whole.

    .venv/bin/python scripts/serve.py          # JOB_WORKERS=1, PORT=8000 unless set
"""
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STOP_GRACE_SECONDS = float(os.environ.get("STOP_GRACE_SECONDS", "30"))
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _flask(*args: str) -> list[str]:
    return [str(BIN / "flask"), "--app", "wsgi", *args]


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when this supervisor dies, even by SIGKILL,
    so no server or worker is left running on its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(command: list[str], env: dict) -> subprocess.Popen:
    # A session of its own: Ctrl+C reaches only this supervisor, which then stops each
    # child once (a worker asked twice stops at once, dropping the job in hand).
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _stop_all(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    # The job worker runs in its own processes here, never inside a web process.
    env = {**os.environ, "IOTLOCK_EMBEDDED_WORKER": "off"}
    job_workers = int(env.get("JOB_WORKERS") or 1)
    migrated = subprocess.run(_flask("db", "upgrade"), cwd=ROOT, env=env, check=False)
    if migrated.returncode != 0:
        print("serve: the migrations failed; nothing started.", file=sys.stderr)
        return migrated.returncode

    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    children = [_start([str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"), "wsgi:app"], env)]
    children += [_start(_flask("worker"), env) for _ in range(job_workers)]
    # Device messages by MQTT where the deployment has its adapter: one subscriber per shard.
    shards = int(env.get("MQTT_SHARDS") or 1) if (env.get("STREAMIOT_MQTT_URL") or "").strip() else 0
    children += [_start(_flask("mqtt-subscriber", "--shard", f"{i}/{shards}"), env) for i in range(shards)]
    subscribers = f" + {shards} MQTT subscriber(s)" if shards else ""
    print(f"serve: gunicorn (pid {children[0].pid}) and {job_workers} job worker(s){subscribers} "
          f"(pids {', '.join(str(c.pid) for c in children[1:])}); Ctrl+C stops them all", file=sys.stderr, flush=True)
    status = 0
    while not stopping:
        ended = [c for c in children if c.poll() is not None]
        if ended:
            what = "gunicorn" if ended[0] is children[0] else "a job worker or MQTT subscriber"
            print(f"serve: {what} (pid {ended[0].pid}) ended with status {ended[0].returncode}; "
                  "stopping the others.", file=sys.stderr, flush=True)
            status = 1
            break
        time.sleep(0.2)
    _stop_all(children)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""`flask --app wsgi worker` as its own process: links a new household, stops on SIGTERM."""
import signal
import subprocess
import sys
import time
from pathlib import Path

from portal.extensions import db
from portal.models import Account
from portal.services import accounts
from tests.processes import worker_env

ROOT = Path(__file__).resolve().parents[2]


def test_worker_process_links_a_household_and_stops_gracefully_on_sigterm(sqlite_app, tmp_path):
    _, account = accounts.register("owner@example.com", "correct horse battery staple", "Elm Street")
    account_id = account.id
    env = worker_env(sqlite_app, tmp_path, STREAMIOT_URL="embedded",
                     STREAMIOT_EMULATOR_DB=sqlite_app.config["STREAMIOT_EMULATOR_DB"])
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline and worker.poll() is None:
            db.session.expire_all()
            state = db.session.get(Account, account_id).link_state
            if state == "connected":
                break
            time.sleep(0.2)
        assert state == "connected"

        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output
    assert "Stopping after the current job" in output

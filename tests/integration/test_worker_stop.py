"""The worker process stops within 5 s of SIGTERM even in the middle of a job that waits on
a StreamIoT that never answers: the job goes back to the queue, due now, its attempt not
counted, for the next worker; a second SIGTERM stops it at once."""
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Job
from portal.services import accounts
from tests.processes import worker_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_streamiot():
    """A StreamIoT that accepts connections and never answers (a hung deployment)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept():
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stopping.set()
    server.close()
    for conn in held:
        conn.close()


def _worker(sqlite_app, tmp_path, streamiot_url):
    env = worker_env(sqlite_app, tmp_path, STREAMIOT_URL=streamiot_url, STREAMIOT_READER_URL=f"{streamiot_url}/reader",
                     STREAMIOT_READ_TIMEOUT="120")
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _link_job_running(worker) -> Job:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        db.session.expire_all()
        job = db.session.scalars(sa.select(Job)).one()
        if job.state == "running":
            return job
        time.sleep(0.1)
    raise AssertionError("the worker never started the household's link job")


def test_sigterm_during_a_hung_job_stops_the_worker_within_5_s_and_hands_the_job_back(
        sqlite_app, tmp_path, silent_streamiot):
    accounts.register("owner@example.com", "correct horse battery staple", "Elm Street")  # queues the link
    worker = _worker(sqlite_app, tmp_path, silent_streamiot)
    try:
        job = _link_job_running(worker)
        time.sleep(0.5)  # inside the handler, waiting on StreamIoT
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=5)
        took = time.monotonic() - signalled
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert took < 5, output
    assert worker.returncode == 0, output
    assert "handed back to the queue" in output
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert (job.state, job.locked_by, job.attempts) == ("queued", None, 0)


def test_a_second_sigterm_stops_the_worker_at_once(sqlite_app, tmp_path, silent_streamiot):
    accounts.register("owner@example.com", "correct horse battery staple", "Elm Street")
    worker = _worker(sqlite_app, tmp_path, silent_streamiot)
    try:
        _link_job_running(worker)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert "Stopping now." in output
    assert worker.returncode == 1, output

"""Helpers for tests that run a server in a subprocess."""
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sigterm(process: subprocess.Popen, timeout: float = 20) -> str:
    """Ask a process the test started to stop (SIGTERM) and return what it printed; one
    still running after `timeout` is killed (its returncode then says so)."""
    if process.poll() is None:
        process.terminate()
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""


def stop(process: subprocess.Popen) -> None:
    """End a server the test started: politely, then for good after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_env(app, instance_dir, **settings) -> dict:
    """The environment of a `flask --app wsgi worker` process on the test app's database and
    secrets (virtual gateways off; `settings` add or replace variables)."""
    return dict(
        os.environ,
        IOTLOCK_ENV="development",
        IOTLOCK_INSTANCE_DIR=str(instance_dir),
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY=app.config["SECRET_KEY"],
        IOTLOCK_DATA_KEY=app.config["IOTLOCK_DATA_KEY"],
        VIRTUAL_GATEWAYS="off",
        PYTHONUNBUFFERED="1",
        **settings,
    )


def wait_for_output(path: Path, pattern: str, process: subprocess.Popen, timeout: float) -> re.Match:
    """The first match of `pattern` in the log file a server writes, waiting up to `timeout`
    (fails the test with the log's tail if it never comes or the server ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text(errors="replace"))
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"no {pattern!r} within {timeout} s; the server said:\n{path.read_text(errors='replace')[-3000:]}")


def server_env(tmp_path: Path, **settings: str) -> dict:
    """The environment of a portal server a test runs: this one's, on its own instance
    folder and SQLite file (unless `settings` say otherwise), development unless told."""
    env = {
        **os.environ,
        "IOTLOCK_INSTANCE_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "IOTLOCK_EMBEDDED_WORKER": "off",
        "VIRTUAL_GATEWAYS": "off",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("IOTLOCK_ENV", None)
    env.update(settings)
    return env


def start_server(command: list[str], tmp_path: Path, env: dict) -> tuple[subprocess.Popen, Path, Path]:
    """Run `command` in the project folder; returns it with the files of its stdout and stderr."""
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    return process, out, err

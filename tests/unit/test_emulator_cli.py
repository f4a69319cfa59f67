"""`flask --app wsgi streamiot-emulator` serves the emulator over real HTTP."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.processes import stop

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path, *args, env_extra=None):
    port = _free_port()
    env = {**os.environ, "IOTLOCK_INSTANCE_DIR": str(tmp_path), **(env_extra or {})}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "streamiot-emulator", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{url}/users/profile", timeout=1)
            return process, url
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.stdout.read().decode()) from None
            time.sleep(0.1)


def test_the_command_serves_the_proxy_paths_and_the_reader(tmp_path):
    db = tmp_path / "given.sqlite3"
    process, url = _serve(tmp_path, "--db", str(db))
    try:
        created = requests.post(
            f"{url}/users", json={"email": "cli@example.com", "password": "long-enough"}, timeout=5
        )
        token = requests.post(
            f"{url}/tokens", json={"email": "cli@example.com", "password": "long-enough"}, timeout=5
        ).json()["token"]
        channel = requests.post(
            f"{url}/channels", json={"name": "ch"}, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        read = requests.get(
            f"{url}/reader{channel.headers['Location']}/messages",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
    finally:
        stop(process)

    assert created.status_code == 201
    assert read.status_code == 200 and read.json()["total"] == 0
    assert db.exists()


def test_the_command_defaults_to_the_configured_database(tmp_path):
    db = tmp_path / "from-config.sqlite3"
    process, url = _serve(tmp_path, env_extra={"STREAMIOT_EMULATOR_DB": str(db)})
    try:
        requests.post(f"{url}/users", json={"email": "cfg@example.com", "password": "long-enough"}, timeout=5)
    finally:
        stop(process)

    assert db.exists()

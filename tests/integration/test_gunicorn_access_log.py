"""The app under gunicorn, the production WSGI server: its access log gets its request
lines (token paths redacted by portal/logredact.py), and nothing goes wrong formatting them."""
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import stop

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT = 8.0


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"no {pattern!r} within {timeout} s; gunicorn said:\n{path.read_text(errors='replace')[-3000:]}")


def test_gunicorn_writes_the_access_log_with_tokens_redacted(tmp_path):
    if not GUNICORN.exists():
        pytest.fail("gunicorn is in requirements.txt: install it (make setup)")
    env = {
        **os.environ,
        "IOTLOCK_INSTANCE_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "IOTLOCK_EMBEDDED_WORKER": "off",
        "VIRTUAL_GATEWAYS": "off",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("IOTLOCK_ENV", None)
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        # Port 0: the system picks a free one, and gunicorn says which ("Listening at").
        proc = subprocess.Popen(
            [str(GUNICORN), "--bind", "127.0.0.1:0", "--workers", "1", "--access-logfile", "-", "wsgi:app"],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
        )
    try:
        port = _wait_for(err, r"Listening at: http://127\.0\.0\.1:(\d+)", proc, START_TIMEOUT).group(1)
        # The worker boots after the arbiter listens: the first request may wait for it.
        url = f"http://127.0.0.1:{port}/login?next=/support/set-password/s3cr3t-link-t0ken"
        with urllib.request.urlopen(url, timeout=START_TIMEOUT) as response:
            assert response.status == 200
        line = _wait_for(out, r'.*"GET /login\?next=[^"]*" 200 .*', proc, 3.0).group(0)
    finally:
        stop(proc)
    assert "/support/set-password/[redacted]" in line and "s3cr3t-link-t0ken" not in line
    logs = out.read_text(errors="replace") + err.read_text(errors="replace")
    assert "format requires a mapping" not in logs
    assert "s3cr3t-link-t0ken" not in logs

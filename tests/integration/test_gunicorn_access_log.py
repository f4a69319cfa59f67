"""The app under gunicorn, the production WSGI server: its access log gets its request
lines (token paths redacted by portal/logredact.py), and nothing goes wrong formatting them."""
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.processes import server_env, start_server, stop, wait_for_output

GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT = 8.0


def test_gunicorn_writes_the_access_log_with_tokens_redacted(tmp_path):
    if not GUNICORN.exists():
        pytest.fail("gunicorn is in requirements.txt: install it (make setup)")
    # Port 0: the system picks a free one, and gunicorn says which ("Listening at").
    proc, out, err = start_server(
        [str(GUNICORN), "--bind", "127.0.0.1:0", "--workers", "1", "--access-logfile", "-", "wsgi:app"],
        tmp_path, server_env(tmp_path),
    )
    try:
        port = wait_for_output(err, r"Listening at: http://127\.0\.0\.1:(\d+)", proc, START_TIMEOUT).group(1)
        # The worker boots after the arbiter listens: the first request may wait for it.
        url = f"http://127.0.0.1:{port}/login?next=/support/set-password/s3cr3t-link-t0ken"
        with urllib.request.urlopen(url, timeout=START_TIMEOUT) as response:
            assert response.status == 200
        line = wait_for_output(out, r'.*"GET /login\?next=[^"]*" 200 .*', proc, 3.0).group(0)
    finally:
        stop(proc)
    assert "/support/set-password/[redacted]" in line and "s3cr3t-link-t0ken" not in line
    logs = out.read_text(errors="replace") + err.read_text(errors="replace")
    assert "format requires a mapping" not in logs
    assert "s3cr3t-link-t0ken" not in logs

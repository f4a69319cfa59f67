"""gunicorn with the project's gunicorn.conf.py: JSON access lines (ACCESS_LOG_FORMAT=json)
carrying the request id and the time taken, tokens redacted, /healthz left out when
ACCESS_LOG_HEALTHZ=off, and the portal's own log records tagged with the request id."""
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.processes import server_env, start_server, stop, wait_for_output

GUNICORN = Path(sys.executable).with_name("gunicorn")
START_TIMEOUT = 8.0


def _get(url: str, request_id: str) -> int:
    request = urllib.request.Request(url, headers={"X-Request-Id": request_id})
    try:
        with urllib.request.urlopen(request, timeout=START_TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_json_access_lines_with_request_ids_and_the_portals_records_tagged(tmp_path):
    # Never migrated: /healthz logs that it cannot read the heartbeats (a record to look for).
    env = server_env(tmp_path, BIND="127.0.0.1:0", WEB_CONCURRENCY="1", ACCESS_LOG_FORMAT="json",
                     ACCESS_LOG_HEALTHZ="off")
    proc, out, err = start_server([str(GUNICORN), "--config", "gunicorn.conf.py", "wsgi:app"], tmp_path, env)
    try:
        port = wait_for_output(err, r"Listening at: http://127\.0\.0\.1:(\d+)", proc, START_TIMEOUT).group(1)
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/login?next=/password/reset/s3cr3t-t0ken", "json-req-1") == 200
        assert _get(f"{base}/healthz", "probe-7") == 503
        wait_for_output(err, r"rid=probe-7: healthz: the worker heartbeats could not be read", proc, 3.0)
        wait_for_output(out, r'"request_id": "json-req-1"', proc, 3.0)
    finally:
        stop(proc)
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    [login] = [line for line in lines if line["request_id"] == "json-req-1"]
    assert login["method"] == "GET" and login["status"] == 200
    assert login["path"] == "/login?next=/password/reset/[redacted]"
    assert isinstance(login["ms"], int) and login["bytes"] > 0
    assert not [line for line in lines if line["path"].startswith("/healthz")]
    assert "s3cr3t-t0ken" not in out.read_text() + err.read_text()

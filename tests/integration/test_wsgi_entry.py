"""wsgi.py, what gunicorn, the worker and `flask run` load: what building the app made is
frozen out of the collector's sight, so a full collection in a serving process scans only
what requests made since (a full scan of everything was a 60-90 ms pause, the p99 of
docs/performance.md's round 6)."""
import subprocess
import sys

from tests.processes import ROOT, server_env

PROBE = "import gc, wsgi; print(gc.get_freeze_count())"


def test_loading_the_app_freezes_what_it_built(tmp_path):
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=server_env(tmp_path), capture_output=True,
                            text=True, timeout=60, check=True)
    frozen = result.stdout.strip()
    # The app's modules, routes, templates' environment, SQLAlchemy's mappers: well over
    # a hundred thousand objects, none of them left for the collector to walk.
    assert int(frozen) > 100_000, result.stdout

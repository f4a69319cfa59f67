"""WSGI entry point: `flask --app wsgi ...` and production servers load `app` from here."""
import gc

from portal import create_app

app = create_app()

# What importing and building the app made lives as long as the process: out of the
# collector's sight (gc.freeze), so a full collection scans only what requests made since.
# A full collection over all of it took 60-90 ms in a gunicorn worker, a pause the requests
# waiting behind it saw as their p99 (docs/performance.md, round 6).
gc.collect()
gc.freeze()

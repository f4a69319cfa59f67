"""`flask --app wsgi worker`: the job worker in the foreground; SIGTERM or Ctrl+C stop it
after the job in hand."""
import logging
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from portal.jobs.outbox import wakeup
from portal.jobs.runner import drain
from portal.jobs.worker import Worker


@click.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs that are due now, then exit.")
@with_appcontext
def worker_command(once: bool) -> None:
    """Run the job worker in the foreground (several may run at once on PostgreSQL)."""
    # current_app is a LocalProxy that Flask types as Flask (Flask's own cli.py ignores this the same way).
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if once:
        click.echo(f"{drain(app)} job runs")
        return

    stop = threading.Event()

    def request_stop(signum, _frame):
        if stop.is_set():
            raise SystemExit(1)  # asked twice: stop now
        click.echo("Stopping after the current job (again to stop at once)…", err=True)
        stop.set()
        wakeup.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = Worker(app)
    click.echo(f"IoTLock worker {worker.worker_id} running (Ctrl+C stops it)")
    worker.run(stop)

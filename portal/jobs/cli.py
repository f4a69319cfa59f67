"""`flask --app wsgi worker`: the job worker in the foreground; `flask --app wsgi
mqtt-subscriber`: an MQTT subscriber in the foreground (portal/jobs/mqtt_subscriber.py).

The worker:  The first SIGTERM (or Ctrl+C)
stops it within STOP_GRACE_SECONDS: the job in hand finishes, or is handed back to the queue;
a second one stops it at once."""
import logging
import os
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from portal.jobs.mqtt_subscriber import Subscriber
from portal.jobs.outbox import wakeup
from portal.jobs.runner import drain, release_held_jobs
from portal.jobs.worker import Worker

log = logging.getLogger("portal.jobs")

# A job still running this long after the first SIGTERM is released (queued again, due now)
# and the process exits: well inside the 10 s most supervisors wait before SIGKILL.
STOP_GRACE_SECONDS = 3.0


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
        # Runs in the main thread, which only waits below: nothing raises inside a database
        # call, and a second signal is never swallowed.
        if stop.is_set():
            click.echo("Stopping now.", err=True)
            os._exit(1)  # the job in hand is taken over when its lease runs out
        click.echo("Stopping after the current job (again to stop at once)…", err=True)
        stop.set()
        wakeup.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = Worker(app)
    # The loop runs in its own thread; the main thread only waits, so signals reach it at once.
    loop = threading.Thread(target=worker.run, args=(stop,), name="iotlock-worker", daemon=True)
    loop.start()
    click.echo(f"IoTLock worker {worker.worker_id} running (Ctrl+C stops it)")
    while loop.is_alive() and not stop.wait(0.5):
        pass
    loop.join(STOP_GRACE_SECONDS)
    if loop.is_alive():
        released = release_held_jobs(app, worker.worker_id)
        log.warning("worker %s stopped in the middle of a job; %d job(s) handed back to the queue",
                    worker.worker_id, released)
        logging.shutdown()
        os._exit(0)  # the loop thread is still inside the job's handler


@click.command("mqtt-subscriber")
@click.option("--shard", default="0/1", show_default=True,
              help="i/n: the households whose id modulo n is i (n is usually MQTT_SHARDS).")
@with_appcontext
def mqtt_subscriber_command(shard: str) -> None:
    """Receive device messages by StreamIoT's MQTT adapter (STREAMIOT_MQTT_URL) for one shard
    of the households. SIGTERM or Ctrl+C stops it."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (app.config.get("STREAMIOT_MQTT_URL") or "").strip():
        raise click.UsageError("STREAMIOT_MQTT_URL is not set: there is no MQTT adapter to subscribe to")
    try:
        index, count = (int(part) for part in shard.split("/"))
        subscriber = Subscriber(app, index, count)
    except ValueError as exc:
        hint = f"{shard!r}: {exc}" if "/" in shard else "i/n, e.g. 0/2"
        raise click.BadParameter(hint, param_hint="--shard") from None
    stop = threading.Event()

    def request_stop(signum, _frame):
        if stop.is_set():
            os._exit(1)
        subscriber.request_stop(stop)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    loop = threading.Thread(target=subscriber.run, args=(stop,), name="iotlock-mqtt-subscriber", daemon=True)
    loop.start()
    click.echo(f"IoTLock MQTT subscriber {index}/{count} on {app.config['STREAMIOT_MQTT_URL']} (Ctrl+C stops it)")
    while loop.is_alive() and not stop.wait(0.5):
        pass
    loop.join(STOP_GRACE_SECONDS + 5)

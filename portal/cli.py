"""Command-line entry points: `flask --app wsgi <command>`."""
import click
from flask import Flask, current_app
from werkzeug.serving import run_simple

from portal.devices.cli import virtual_gateway_command
from portal.jobs.cli import worker_command
from portal.jobs.worker import start_in_background
from portal.streamiot.emulator.cli import emulator_command
from portal.support.cli import staff_group


def register(app: Flask) -> None:
    app.cli.add_command(serve_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(emulator_command)
    app.cli.add_command(virtual_gateway_command)
    app.cli.add_command(staff_group)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=None, type=int, help="default: PORT (5000)")
def serve_command(host: str, port: int | None) -> None:
    """Serve the whole product: the portal, the job worker and (when on) virtual gateways."""
    # current_app is a LocalProxy that Flask types as Flask (Flask's own cli.py ignores this the same way).
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    port = port or app.config["PORT"]
    stop = start_in_background(app) if app.config["EMBEDDED_WORKER"] else None
    click.echo(f"IoTLock portal on http://{host}:{port}/  (Ctrl+C stops it)")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if stop:
            stop()

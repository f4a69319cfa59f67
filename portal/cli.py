"""Command-line entry points: `flask --app wsgi <command>`."""
from pathlib import Path

import click
from flask import Flask, current_app
from werkzeug.serving import run_simple

from portal.devices.cli import virtual_gateway_command
from portal.jobs.cli import mqtt_subscriber_command, worker_command
from portal.jobs.mqtt_subscriber import Subscriber
from portal.jobs.worker import start_in_background
from portal.streamiot.deployment import is_embedded, start_embedded_broker
from portal.streamiot.emulator.cli import emulator_command
from portal.support.cli import staff_group


def register(app: Flask) -> None:
    app.cli.add_command(serve_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(mqtt_subscriber_command)
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
    broker = subscriber = None
    if app.config["EMBEDDED_WORKER"] and app.config["EMBEDDED_MQTT"]:
        broker = start_embedded_broker(app.config, Path(app.instance_path) / "mqtt")
        if broker is not None:
            app.config["STREAMIOT_MQTT_URL"] = broker.url
            subscriber = Subscriber(app).start()
            click.echo(f"Device messages by MQTT too: the emulator's Mosquitto on {broker.url}")
        elif is_embedded(app.config) and not app.config["STREAMIOT_MQTT_URL"]:
            click.echo("Mosquitto is not installed (apt-get install mosquitto): device messages by the reader only")
    stop = start_in_background(app) if app.config["EMBEDDED_WORKER"] else None
    click.echo(f"IoTLock portal on http://{host}:{port}/  (Ctrl+C stops it)")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if stop:
            stop()
        if subscriber is not None:
            subscriber.stop()
        if broker is not None:
            broker.close()

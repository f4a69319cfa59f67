"""`flask --app wsgi streamiot-emulator`: serve the StreamIoT emulator over real HTTP."""
import os

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from portal.streamiot.emulator import make_emulator
from portal.streamiot.emulator.broker import Broker, mosquitto_path


@click.command("streamiot-emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8181, type=int, show_default=True)
@click.option(
    "--db",
    "db_path",
    default=None,
    help="Its SQLite file (default: the STREAMIOT_EMULATOR_DB setting).",
)
@click.option("--mqtt-port", default=None, type=int,
              help="Also run its MQTT adapter (Mosquitto, as a child process) on this port.")
@with_appcontext
def emulator_command(host: str, port: int, db_path: str | None, mqtt_port: int | None) -> None:
    """Serve the StreamIoT emulator over HTTP (proxy paths at /, the reader at /reader), and
    with --mqtt-port its MQTT adapter."""
    config = current_app.config
    db_path = db_path or config["STREAMIOT_EMULATOR_DB"]
    app = make_emulator(db_path, token_ttl=config["STREAMIOT_EMULATOR_TOKEN_TTL"])
    broker = None
    if mqtt_port is not None:
        if mosquitto_path() is None:
            raise click.UsageError("--mqtt-port needs Mosquitto (apt-get install mosquitto)")
        broker = Broker(app.store, os.path.join(os.path.dirname(app.db_path), "mqtt"), port=mqtt_port).start()
        app.attach_broker(broker)
    base = f"http://{host}:{port}"
    click.echo(f"StreamIoT emulator on {base}/  (state in {app.db_path})")
    click.echo(f"  STREAMIOT_URL={base}  STREAMIOT_READER_URL={base}/reader")
    if broker is not None:
        click.echo(f"  STREAMIOT_MQTT_URL={broker.url}")
    click.echo("  Ctrl+C stops it.")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        if broker is not None:
            broker.close()

"""`flask --app wsgi streamiot-emulator`: serve the StreamIoT emulator over real HTTP."""
import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from portal.streamiot.emulator import make_emulator


@click.command("streamiot-emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8181, type=int, show_default=True)
@click.option(
    "--db",
    "db_path",
    default=None,
    help="Its SQLite file (default: the STREAMIOT_EMULATOR_DB setting).",
)
@with_appcontext
def emulator_command(host: str, port: int, db_path: str | None) -> None:
    """Serve the StreamIoT emulator over HTTP (proxy paths at /, the reader at /reader)."""
    config = current_app.config
    db_path = db_path or config["STREAMIOT_EMULATOR_DB"]
    app = make_emulator(db_path, token_ttl=config["STREAMIOT_EMULATOR_TOKEN_TTL"])
    base = f"http://{host}:{port}"
    click.echo(f"StreamIoT emulator on {base}/  (state in {app.db_path})")
    click.echo(f"  STREAMIOT_URL={base}  STREAMIOT_READER_URL={base}/reader")
    click.echo("  Ctrl+C stops it.")
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)

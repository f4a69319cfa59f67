"""`flask --app wsgi streamiot-emulator`."""
import click


@click.command("streamiot-emulator")
def emulator_command() -> None:
    """Serve the StreamIoT emulator over HTTP."""
    raise click.ClickException("not built yet")

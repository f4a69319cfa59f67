"""`flask --app wsgi virtual-gateway`."""
import click


@click.command("virtual-gateway")
def virtual_gateway_command() -> None:
    """Run a virtual gateway from a device settings file."""
    raise click.ClickException("not built yet")

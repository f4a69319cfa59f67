"""`flask --app wsgi worker`."""
import click


@click.command("worker")
def worker_command() -> None:
    """Run the job worker in the foreground."""
    raise click.ClickException("not built yet")

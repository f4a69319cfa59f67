"""`flask --app wsgi staff ...`: support staff accounts exist only through these commands."""
import click
from flask import current_app, url_for
from flask.cli import AppGroup

from portal.services import staff
from portal.services.errors import ServiceError
from portal.urls import serving_base_url

staff_group = AppGroup("staff", help="Create, reset and disable support staff accounts.")


def _password_link(token: str) -> str:
    # No request here: the link is built for PUBLIC_URL, or the address `make run` serves (PORT).
    with current_app.test_request_context(base_url=serving_base_url()):
        return url_for("support.set_password", token=token, _external=True)


def _print_link(user, token: str) -> None:
    hours = int(staff.password_link_ttl().total_seconds() // 3600)
    click.echo(
        f"Send this one-time link to {user.email} (by a channel you trust). It sets their "
        f"password and stops working once used or after {hours} hours:"
    )
    click.echo(f"  {_password_link(token)}")
    click.echo("At their first login they set up an authenticator app (TOTP) and get recovery codes.")


@staff_group.command("create")
@click.argument("email")
@click.option("--name", help="Name households see in their activity log, e.g. “Support (Sam)”.")
def create_command(email: str, name: str | None) -> None:
    """Create a staff account and print its one-time set-password link."""
    try:
        user, token = staff.create_staff(email, name)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Staff account created: {user.email} (shown to households as “Support ({user.display_name})”).")
    _print_link(user, token)


@staff_group.command("reset")
@click.argument("email")
def reset_command(email: str) -> None:
    """Re-enable a staff account with a new password link and a new second factor."""
    try:
        user, token = staff.reset_staff(email)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Staff account reset: {user.email}. Their sessions, password and authenticator are gone.")
    _print_link(user, token)


@staff_group.command("disable")
@click.argument("email")
def disable_command(email: str) -> None:
    """Disable a staff account and end all of its sessions now."""
    try:
        user = staff.disable_staff(email)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Staff account disabled: {user.email}. Every session it had is ended.")

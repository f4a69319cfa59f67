"""`flask --app wsgi virtual-gateway`: run a virtual gateway from a device settings file.

    flask --app wsgi virtual-gateway --settings gateway.json            # runs it (Ctrl+C stops)
    flask --app wsgi virtual-gateway keypad --settings gateway.json MAILBOX-KEY 4821
    flask --app wsgi virtual-gateway status --settings gateway.json

The settings file is the one a member downloads for a gateway. The keypad and status
commands work on the same state file as the running gateway (it is locked while used).
"""
import json
import logging
import time
from pathlib import Path

import click
from flask import current_app

from portal.devices.firmware import UnknownMailbox
from portal.devices.virtual_gateway import InvalidSettings, VirtualGateway, parse_settings
from portal.streamiot.client import StreamIoT
from portal.streamiot.deployment import client_from_config
from portal.streamiot.emulator import EMBEDDED_URL

SETTINGS_HELP = "The gateway's device settings file (JSON), as downloaded from the portal."
STATE_HELP = "Where the gateway keeps its state [default: VIRTUAL_GATEWAY_DIR/cli-<thing id>.json]."


def _load_settings(path: str) -> dict:
    try:
        settings = json.loads(Path(path).read_text())
        return parse_settings(settings)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--settings") from None
    except ValueError as exc:  # bad JSON, or InvalidSettings
        what = str(exc) if isinstance(exc, InvalidSettings) else f"not JSON ({exc})"
        raise click.BadParameter(f"{path}: {what}", param_hint="--settings") from None


def _streamiot(settings: dict):
    config = current_app.config
    url = (settings.get("streamiot_url") or "").strip().rstrip("/")
    if not url:
        raise click.BadParameter("the settings lack streamiot_url", param_hint="--settings")
    if url in ("embedded", EMBEDDED_URL):
        # A portal in embedded mode hands out its in-process emulator's address: use the
        # emulator database of this instance folder, in process too.
        return client_from_config({**config, "STREAMIOT_URL": "embedded"})
    reader = (settings.get("streamiot_reader_url") or "").strip()
    if not reader:
        raise click.BadParameter("the settings lack streamiot_reader_url", param_hint="--settings")
    return StreamIoT(
        url,
        reader,
        connect_timeout=config["STREAMIOT_CONNECT_TIMEOUT"],
        read_timeout=config["STREAMIOT_READ_TIMEOUT"],
    )


def _gateway(settings_path: str, state_path: str | None, **options):
    settings = _load_settings(settings_path)
    path = state_path or Path(current_app.config["VIRTUAL_GATEWAY_DIR"]) / f"cli-{settings['thing_id']}.json"
    return VirtualGateway(settings, path, _streamiot(settings), **options)


def _run(settings_path, state_path, interval, heartbeat, open_seconds, once) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("portal.devices").setLevel(logging.INFO)
    gateway = _gateway(settings_path, state_path, heartbeat_seconds=heartbeat, open_seconds=open_seconds)
    click.echo(
        f"Virtual gateway {gateway.thing_id} on channel {gateway.channel_id}; "
        f"state in {gateway.state_file.path}" + ("" if once else " (Ctrl+C stops it)")
    )
    try:
        while True:
            try:
                gateway.step()
            except Exception:  # noqa: BLE001  (a device keeps running; the next step may work)
                logging.getLogger(__name__).exception("step failed")
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped")


@click.group(
    "virtual-gateway",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--settings", "settings_path", type=click.Path(dir_okay=False), help=SETTINGS_HELP)
@click.option("--state", "state_path", type=click.Path(dir_okay=False), help=STATE_HELP)
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between two polls of the channels.")
@click.option("--heartbeat", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds between two heartbeats.")
@click.option("--open-seconds", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="How long a box stays open before it reports CLOSED.")
@click.option("--once", is_flag=True, help="Do one poll and exit.")
@click.pass_context
def virtual_gateway_command(ctx, settings_path, state_path, interval, heartbeat, open_seconds, once) -> None:
    """Run a virtual gateway from a device settings file (see the subcommands too)."""
    if ctx.invoked_subcommand is not None:
        return
    if not settings_path:
        raise click.UsageError("give the gateway's settings file: --settings FILE")
    _run(settings_path, state_path, interval, heartbeat, open_seconds, once)


def _from_group(ctx, settings_path, state_path):
    parent = ctx.parent.params if ctx.parent is not None else {}
    settings_path = settings_path or parent.get("settings_path")
    if not settings_path:
        raise click.UsageError("give the gateway's settings file: --settings FILE")
    return settings_path, state_path or parent.get("state_path")


@virtual_gateway_command.command("run")
@click.option("--settings", "settings_path", type=click.Path(dir_okay=False), help=SETTINGS_HELP)
@click.option("--state", "state_path", type=click.Path(dir_okay=False), help=STATE_HELP)
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05))
@click.option("--heartbeat", default=30.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--open-seconds", default=5.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--once", is_flag=True, help="Do one poll and exit.")
@click.pass_context
def run_command(ctx, settings_path, state_path, interval, heartbeat, open_seconds, once) -> None:
    """Run the gateway in the foreground (same as giving --settings to the group)."""
    settings_path, state_path = _from_group(ctx, settings_path, state_path)
    _run(settings_path, state_path, interval, heartbeat, open_seconds, once)


@virtual_gateway_command.command("keypad")
@click.option("--settings", "settings_path", type=click.Path(dir_okay=False), help=SETTINGS_HELP)
@click.option("--state", "state_path", type=click.Path(dir_okay=False), help=STATE_HELP)
@click.argument("mailbox_key")
@click.argument("digits")
@click.pass_context
def keypad_command(ctx, settings_path, state_path, mailbox_key, digits) -> None:
    """Type DIGITS on the keypad of the mailbox whose public key is MAILBOX_KEY."""

    settings_path, state_path = _from_group(ctx, settings_path, state_path)
    gateway = _gateway(settings_path, state_path)
    try:
        result = gateway.keypad(mailbox_key, digits)
    except UnknownMailbox:
        raise click.ClickException(
            "this gateway serves no mailbox with that public key (has it been registered yet?)"
        ) from None
    click.echo(result)
    unsent = gateway.snapshot()["unsent"]
    if unsent:
        click.echo(f"({unsent} message(s) not yet accepted by StreamIoT; the running gateway retries)")


@virtual_gateway_command.command("status")
@click.option("--settings", "settings_path", type=click.Path(dir_okay=False), help=SETTINGS_HELP)
@click.option("--state", "state_path", type=click.Path(dir_okay=False), help=STATE_HELP)
@click.pass_context
def status_command(ctx, settings_path, state_path) -> None:
    """Print what the gateway holds (JSON; PIN counts, never PINs)."""
    settings_path, state_path = _from_group(ctx, settings_path, state_path)
    click.echo(json.dumps(_gateway(settings_path, state_path).snapshot(), indent=2))

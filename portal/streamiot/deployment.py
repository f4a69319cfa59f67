"""Which StreamIoT the app's settings name: a deployment by its URLs, or the embedded emulator.

The one place that knows the embedded emulator exists; the client (client.py) speaks
HTTP to whatever base URL it is given.
"""
from collections.abc import Mapping

import requests

from portal.streamiot.client import StreamIoT
from portal.streamiot.emulator import EMBEDDED_READER_URL, EMBEDDED_URL, EmbeddedAdapter, get_emulator
from portal.streamiot.emulator.broker import Broker, mosquitto_path


def is_embedded(config: Mapping) -> bool:
    return (config.get("STREAMIOT_URL") or "embedded").strip() in ("embedded", EMBEDDED_URL)


def client_from_config(config: Mapping) -> StreamIoT:
    """The deployment of the app's settings; "embedded" is the in-process emulator."""
    timeouts = dict(
        connect_timeout=config.get("STREAMIOT_CONNECT_TIMEOUT", 3.05),
        read_timeout=config.get("STREAMIOT_READ_TIMEOUT", 10.0),
    )
    if is_embedded(config):
        emulator = get_emulator(
            config["STREAMIOT_EMULATOR_DB"],
            token_ttl=config.get("STREAMIOT_EMULATOR_TOKEN_TTL", 36000),
        )
        session = requests.Session()
        session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(emulator))
        return StreamIoT(EMBEDDED_URL, EMBEDDED_READER_URL, session=session, **timeouts)
    url = (config.get("STREAMIOT_URL") or "").strip()
    reader = (config.get("STREAMIOT_READER_URL") or "").strip()
    if not reader:
        # The reader is never behind the proxy, so its address cannot be guessed.
        raise ValueError("STREAMIOT_READER_URL must be set when STREAMIOT_URL is a deployment")
    return StreamIoT(url, reader, **timeouts)


def device_urls(config: Mapping) -> tuple[str, str]:
    """The StreamIoT URLs a gateway's settings file names. STREAMIOT_PUBLIC_URL and
    STREAMIOT_PUBLIC_READER_URL win; in embedded mode they are the in-process emulator's
    addresses, which only a virtual gateway of this portal (or `flask virtual-gateway` on
    the same emulator database) can reach."""
    base = config.get("STREAMIOT_PUBLIC_URL")
    reader = config.get("STREAMIOT_PUBLIC_READER_URL")
    if is_embedded(config):
        return base or EMBEDDED_URL, reader or EMBEDDED_READER_URL
    return base or (config.get("STREAMIOT_URL") or "").strip(), reader or (config.get("STREAMIOT_READER_URL") or "")


def start_embedded_broker(config: Mapping, directory) -> Broker | None:
    """Mosquitto as the embedded emulator's MQTT adapter (`make run`), when the settings are
    embedded and name no MQTT adapter of their own and Mosquitto is installed; else None."""
    if not is_embedded(config) or (config.get("STREAMIOT_MQTT_URL") or "").strip() or mosquitto_path() is None:
        return None
    emulator = get_emulator(config["STREAMIOT_EMULATOR_DB"],
                            token_ttl=config.get("STREAMIOT_EMULATOR_TOKEN_TTL", 36000))
    broker = Broker(emulator.store, directory).start()
    emulator.attach_broker(broker)
    return broker

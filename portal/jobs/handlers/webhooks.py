"""The "webhook.deliver" job: POST one signed message to a household's endpoint.

Never held by StreamIoT's health (it does not talk to StreamIoT). Each attempt vets the
address again and connects to the address it vetted: the URL's host goes in the Host header
and, for https, in the TLS SNI and the certificate check, so the name is never resolved a
second time (no DNS rebinding between the check and the connection). No proxy from the
environment (it would connect elsewhere) and no redirects (they could point inside).
"""
import ipaddress
import logging
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter

from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.registry import handler
from portal.models import utcnow
from portal.services import webhooks
from portal.services.errors import ValidationFailed

log = logging.getLogger(__name__)


class PinnedAddress(HTTPAdapter):
    """Connects to the URL's (vetted) IP address while TLS checks the certificate for `hostname`."""

    def __init__(self, hostname: str):
        self.hostname = hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https":
            # urllib3's pool keys take these (PoolKey.key_server_hostname / key_assert_hostname);
            # requests' type stubs list fewer keys.
            extra = cast(dict, pool_kwargs)
            extra["server_hostname"] = self.hostname
            extra["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def _pinned_url(url: str, address: str) -> str:
    parts = urlsplit(url)
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def post(url: str, body: str, headers: dict[str, str], target: webhooks.Target, config
         ) -> tuple[int | None, str, str | None]:
    """POST to the first vetted address: (status code or None, what happened, answer's start)."""
    parts = urlsplit(url)
    host_header = parts.hostname or target.host
    if ":" in host_header:
        host_header = f"[{host_header}]"
    if parts.port:
        host_header = f"{host_header}:{parts.port}"
    session = requests.Session()
    session.trust_env = False
    session.mount(f"{target.scheme}://", PinnedAddress(target.host))
    read_timeout = config["WEBHOOK_READ_TIMEOUT"]
    try:
        response = session.post(
            _pinned_url(url, target.addresses[0]), data=body.encode(), headers={**headers, "host": host_header},
            timeout=(config["WEBHOOK_CONNECT_TIMEOUT"], read_timeout), allow_redirects=False, stream=True,
        )
    except requests.exceptions.SSLError:
        return None, "The endpoint's TLS certificate was not accepted", None
    except requests.exceptions.ConnectTimeout:
        return None, "Could not connect in time", None
    except requests.exceptions.Timeout:
        return None, f"No answer within {read_timeout:g} s", None
    except requests.exceptions.ConnectionError:
        return None, "Could not connect to the endpoint", None
    except requests.exceptions.RequestException as exc:
        return None, f"The request failed ({type(exc).__name__})", None
    finally:
        session.close()
    try:
        raw = response.raw.read(webhooks.SNIPPET_CHARS, decode_content=True) or b""
    except Exception:  # noqa: BLE001  (the snippet is a courtesy; the status code is what counts)
        raw = b""
    finally:
        response.close()
    status = response.status_code
    if 200 <= status < 300:
        result = "Delivered"
    elif 300 <= status < 400:
        result = f"The endpoint answered {status} (redirects are not followed)"
    else:
        result = f"The endpoint answered {status}"
    return status, result, raw.decode("utf-8", "replace")


def _gave_up(job, reason: str) -> None:
    webhooks.give_up(job.payload["delivery_id"], reason)


@handler(webhooks.DELIVER, on_give_up=_gave_up, streamiot=False)
def deliver(job, ctx) -> None:
    now = utcnow()
    outgoing = webhooks.prepare(job.payload["delivery_id"], now)
    if outgoing is None:
        return
    config = current_app.config
    try:
        target = webhooks.check_url(outgoing.url, config)
    except ValidationFailed as refused:
        status, result, snippet = None, f"Not sent: {refused.message}", None
    else:
        status, result, snippet = post(outgoing.url, outgoing.body, outgoing.headers, target, config)
    delay = webhooks.record_attempt(outgoing.delivery_id, now, status_code=status, result=result, snippet=snippet)
    if status is not None and 200 <= status < 300:
        return
    if delay is None:
        # Given up after the retry window (the delivery says so), or settled meanwhile.
        raise PermanentFailure(result)
    raise RetryLater(result, delay=delay)

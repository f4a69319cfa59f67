"""The "webhook.deliver" job: POST one signed message to a household's endpoint.

Never held by StreamIoT's health (it does not talk to StreamIoT). Each attempt vets the
address again and connects to the address it vetted, within WEBHOOK_TOTAL_SECONDS however
slowly the endpoint answers (portal/egress.py).
"""
import logging

import requests
from flask import current_app

from portal import egress
from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.registry import handler
from portal.models import utcnow
from portal.services import webhooks
from portal.services.errors import ValidationFailed

log = logging.getLogger(__name__)


def post(body: str, headers: dict[str, str], target: egress.Target, config) -> tuple[int | None, str, str | None]:
    """POST to the first vetted address: (status code or None, what happened, answer's start)."""
    total = config["WEBHOOK_TOTAL_SECONDS"]
    read_timeout = config["WEBHOOK_READ_TIMEOUT"]
    session = egress.Session(target, total)
    try:
        try:
            response = session.post(
                egress.pinned_url(target), data=body.encode(), headers={**headers, "host": egress.host_header(target)},
                timeout=(config["WEBHOOK_CONNECT_TIMEOUT"], read_timeout), allow_redirects=False, stream=True,
            )
        except requests.exceptions.SSLError:
            return None, "The endpoint's TLS certificate was not accepted", None
        except requests.exceptions.ConnectTimeout:
            return None, "Could not connect in time", None
        except requests.exceptions.Timeout:
            return None, f"No answer within {read_timeout:g} s", None
        except requests.exceptions.ConnectionError:
            if session.timed_out:
                return None, f"No full answer within {total:g} s", None
            return None, "Could not connect to the endpoint", None
        except requests.exceptions.RequestException as exc:
            return None, f"The request failed ({type(exc).__name__})", None
        try:
            raw = response.raw.read(webhooks.SNIPPET_CHARS, decode_content=True) or b""
        except Exception:  # noqa: BLE001  (the snippet is a courtesy; the status code is what counts)
            raw = b""
        finally:
            response.close()
    finally:
        session.close()
    if session.timed_out:
        # Shut mid-answer, the socket reads as the answer's end: what arrived is not an answer.
        return None, f"No full answer within {total:g} s", None
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
        status, result, snippet = post(outgoing.body, outgoing.headers, target, config)
    delay = webhooks.record_attempt(outgoing.delivery_id, now, status_code=status, result=result, snippet=snippet)
    if status is not None and 200 <= status < 300:
        return
    if delay is None:
        # Given up after the retry window (the delivery says so), or settled meanwhile.
        raise PermanentFailure(result)
    raise RetryLater(result, delay=delay)

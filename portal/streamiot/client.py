"""HTTP client for StreamIoT (the Mainflux 0.13.0 API of STREAMIOT_API.md), quirks included.

One method per call. Every call has explicit (connect, read) timeouts, and every
failure comes out as a typed error of `portal.streamiot.errors`. A `UserAPI` holds
one household's login: on a 401, or on the things service's empty-body 500 (its
answer to an expired token), it logs in again once and retries the call once.
No Flask and no models here: the job handlers pass in what they know.
"""
import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from urllib.parse import quote, urlsplit

import requests

from . import messages
from .errors import (
    BadRequest,
    Conflict,
    NotFound,
    ProtocolError,
    ServerError,
    StreamIoTError,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # the things service's largest page
MAX_PAGES = 1000  # a platform that never stops paging must not loop us forever
BODY_KEPT = 500  # characters of an unexpected body kept on the error, for debugging

# An id as it appears in a Location header: a UUID on the platform, but tolerate others.
_ID = re.compile(r"[A-Za-z0-9._~-]+\Z")


def _quote(value: str) -> str:
    return quote(str(value), safe="")


def _body_text(resp: requests.Response) -> str:
    try:
        return resp.content.decode("utf-8", errors="replace")[:BODY_KEPT]
    except Exception:  # a broken stream: the status says enough
        return ""


def _platform_error(resp: requests.Response) -> str | None:
    """The `error` of a JSON error body, whatever Content-Type claims (it says text/plain)."""
    try:
        payload = json.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return payload["error"]
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now if now is not None else time.time()
        seconds = when.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _error_for(resp: requests.Response, operation: str) -> StreamIoTError:
    status = resp.status_code
    platform_error = _platform_error(resp)
    body = _body_text(resp)
    said = f": {platform_error}" if platform_error else (" with an empty body" if not resp.content else "")
    if status in (429, 502, 503, 504):
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return Unavailable(
            f"StreamIoT is unavailable ({operation} answered {status}{said})",
            retry_after=retry_after,
            status=status,
            body=body,
            error=platform_error,
            operation=operation,
        )
    message = f"StreamIoT refused {operation} ({status}{said})"
    if status in (401, 403):
        return Unauthorized(message, status=status, body=body, error=platform_error, operation=operation)
    if status == 404:
        return NotFound(message, status=status, body=body, error=platform_error, operation=operation)
    if status == 409:
        return Conflict(message, status=status, body=body, error=platform_error, operation=operation)
    if 400 <= status < 500:
        return BadRequest(message, status=status, body=body, error=platform_error, operation=operation)
    if 500 <= status < 600:
        return ServerError(
            f"StreamIoT failed on {operation} ({status}{said})",
            status=status,
            body=body,
            error=platform_error,
            operation=operation,
        )
    if 300 <= status < 400:
        where = urlsplit(resp.headers.get("Location", "")).netloc or "elsewhere"
        return ProtocolError(
            f"StreamIoT redirected {operation} to {where}; set its URL to the final address",
            status=status,
            body=body,
            error=platform_error,
            operation=operation,
        )
    return ProtocolError(
        f"StreamIoT answered {operation} with {status}",
        status=status,
        body=body,
        error=platform_error,
        operation=operation,
    )


def _is_expired_token_answer(exc: StreamIoTError) -> bool:
    """401, or the empty-body 500 that the things service gives for a bad or expired token."""
    if isinstance(exc, Unauthorized) and exc.status == 401:
        return True
    return isinstance(exc, ServerError) and exc.status == 500 and not exc.body.strip()


# The reader answers a bad or expired Bearer token with a 500 and this message (the same it
# gives a channel that does not exist), not with an empty 500.
READER_REFUSED = "failed to perform authorization over the entity"


def _is_expired_reader_token_answer(exc: StreamIoTError) -> bool:
    return _is_expired_token_answer(exc) or (
        isinstance(exc, ServerError) and exc.status == 500 and exc.error == READER_REFUSED
    )


# Reader filters whose zero value the platform ignores: `v=0`, `vb=false`, `from=0`, `to=0`
# return every message, as if not given.
_IGNORED_WHEN_ZERO = ("v", "vb", "from", "to")


class StreamIoT:
    """A StreamIoT deployment: its proxy base URL and its reader's own base URL."""

    def __init__(
        self,
        base_url: str,
        reader_url: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: requests.Session | None = None,
    ):
        if not base_url or not reader_url:
            raise ValueError("StreamIoT needs both its base URL and its reader URL")
        self.base_url = base_url.rstrip("/")
        self.reader_url = reader_url.rstrip("/")
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.session = session or requests.Session()

    def __repr__(self) -> str:
        return f"<StreamIoT {self.base_url} reader={self.reader_url}>"

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    # --- plumbing ------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        operation: str,
        *,
        authorization: str | None = None,
        json_body=None,
        data: bytes | None = None,
        content_type: str | None = None,
        params: dict | None = None,
    ) -> requests.Response:
        """One HTTP exchange: a 2xx response, or the typed error. Never logs a header."""
        headers = {}
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type
        started = time.monotonic()
        try:
            resp = self.session.request(
                method,
                url,
                headers=headers,
                json=json_body,
                data=data,
                params=params,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as exc:
            log.info("StreamIoT %s: no connection within %ss", operation, self.connect_timeout)
            raise Unavailable(
                f"StreamIoT did not accept a connection in time ({operation})", operation=operation
            ) from exc
        except requests.exceptions.Timeout as exc:
            log.info("StreamIoT %s: no answer within %ss", operation, self.read_timeout)
            raise Unavailable(
                f"StreamIoT did not answer in time ({operation})", operation=operation
            ) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            log.info("StreamIoT %s: connection failed (%s)", operation, type(exc).__name__)
            raise Unavailable(
                f"StreamIoT could not be reached ({operation})", operation=operation
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise StreamIoTError(
                f"StreamIoT request could not be made ({operation}: {type(exc).__name__})",
                operation=operation,
            ) from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("StreamIoT %s -> %s in %.0f ms", operation, resp.status_code, elapsed_ms)
        if not 200 <= resp.status_code < 300:
            raise _error_for(resp, operation)
        return resp

    @staticmethod
    def _json(resp: requests.Response, operation: str, *, secret: bool = False) -> dict:
        """The JSON object of a 2xx, or ProtocolError (an HTML page from a proxy, garbage)."""
        try:
            payload = json.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise ProtocolError(
                f"StreamIoT answered {operation} with {resp.status_code} but no JSON object",
                status=resp.status_code,
                body="" if secret else _body_text(resp),
                operation=operation,
            )
        return payload

    @staticmethod
    def _created_id(resp: requests.Response, operation: str, collection: str) -> str:
        """The id of a created object, from `Location: /<collection>/<id>` (the body is empty)."""
        location = resp.headers.get("Location", "")
        segments = [s for s in urlsplit(location).path.split("/") if s]
        if len(segments) < 2 or segments[-2] != collection or not _ID.match(segments[-1]):
            raise ProtocolError(
                f"StreamIoT answered {operation} with {resp.status_code} but no usable Location",
                status=resp.status_code,
                body=_body_text(resp),
                operation=operation,
            )
        return segments[-1]

    @staticmethod
    def _expect_empty(resp: requests.Response, operation: str) -> None:
        """Bodiless successes (connect, delete, publish) must not be some other server's page."""
        if not resp.content.strip():
            return
        try:
            json.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError(
                f"StreamIoT answered {operation} with {resp.status_code} and an unexpected body",
                status=resp.status_code,
                body=_body_text(resp),
                operation=operation,
            ) from None

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # --- users service -------------------------------------------------------

    def create_user(self, email: str, password: str, *, token: str | None = None, metadata=None) -> str:
        """POST /users; the new user's id. `token` (an admin's) where self-registration is off."""
        body = {"email": email, "password": password}
        if metadata is not None:
            body["metadata"] = metadata
        operation = "POST /users"
        resp = self._send(
            "POST", self._url("/users"), operation,
            authorization=f"Bearer {token}" if token else None, json_body=body,
        )
        return self._created_id(resp, operation, "users")

    def issue_token(self, email: str, password: str) -> str:
        """POST /tokens: a fresh login token (a JWT, valid 10 hours on a default deployment)."""
        operation = "POST /tokens"
        credentials = {"email": email, "password": password}
        resp = self._send("POST", self._url("/tokens"), operation, json_body=credentials)
        token = self._json(resp, operation, secret=True).get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(
                f"StreamIoT answered {operation} without a token",
                status=resp.status_code,
                operation=operation,
            )
        return token

    def as_user(
        self,
        email: str,
        password: str,
        *,
        token: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> "UserAPI":
        """The calls a household makes with its own StreamIoT login."""
        return UserAPI(self, email, password, token=token, on_token=on_token)

    # --- http adapter and reader ---------------------------------------------

    def publish(self, channel_id: str, thing_key: str, pack: list[dict]) -> None:
        """POST /http/channels/{id}/messages as a thing; 202 means StreamIoT took it.

        The platform accepts any body and drops bad SenML silently later, so the
        pack is checked here first (ValueError).
        """
        messages.validate_pack(pack)
        operation = f"POST /http/channels/{channel_id}/messages"
        resp = self._send(
            "POST",
            self._url(f"/http/channels/{_quote(channel_id)}/messages"),
            operation,
            authorization=f"Thing {thing_key}",
            data=json.dumps(pack, separators=(",", ":")).encode(),
            content_type="application/senml+json",
        )
        if resp.status_code != 202:
            raise ProtocolError(
                f"StreamIoT answered {operation} with {resp.status_code}, not 202",
                status=resp.status_code,
                body=_body_text(resp),
                operation=operation,
            )
        self._expect_empty(resp, operation)

    def read_messages(
        self,
        channel_id: str,
        *,
        thing_key: str | None = None,
        token: str | None = None,
        offset: int = 0,
        limit: int = 100,
        **filters,
    ) -> dict:
        """GET {reader}/channels/{id}/messages, newest first; "messages" is always a list.

        Filters: publisher, name (the resolved bn+n), subtopic, v + comparator, vs, vb,
        from (also as `from_`, `from` being a Python keyword) and to (epoch seconds).
        A zero `v`, `vb=False` or a zero `from`/`to` is a ValueError: the platform would
        ignore it and return everything.
        """
        if bool(thing_key) == bool(token):
            raise ValueError("read as a thing (thing_key) or as a user (token), one of them")
        params: dict[str, object] = {"offset": offset, "limit": limit}
        for key, value in filters.items():
            if value is None:
                continue
            key = key.rstrip("_")  # from_ -> from
            if key in _IGNORED_WHEN_ZERO and not value:
                raise ValueError(f"StreamIoT ignores {key}={value!r} (a zero value): leave the filter out")
            params[key] = ("true" if value else "false") if isinstance(value, bool) else value
        operation = f"GET /channels/{channel_id}/messages"
        resp = self._send(
            "GET",
            f"{self.reader_url}/channels/{_quote(channel_id)}/messages",
            operation,
            authorization=f"Thing {thing_key}" if thing_key else f"Bearer {token}",
            params=params,
        )
        page = self._json(resp, operation)
        # The reader leaves "messages" out when there are none.
        if page.get("messages") is None:
            page["messages"] = []
        if not isinstance(page["messages"], list):
            raise ProtocolError(
                f"StreamIoT answered {operation} with messages that are not a list",
                status=resp.status_code,
                body=_body_text(resp),
                operation=operation,
            )
        return page


class UserAPI:
    """One household's StreamIoT login: its things, channels and connections.

    `token` is the current login token (None until the first call logs in). Each
    login made here is handed to `on_token(token)` so the caller can store it.
    """

    def __init__(
        self,
        client: StreamIoT,
        email: str,
        password: str,
        *,
        token: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ):
        self.client = client
        self.email = email
        self._password = password
        self.token = token
        self._on_token = on_token

    def __repr__(self) -> str:
        return f"<UserAPI {self.email}>"

    def login(self) -> str:
        """Log in again now: a new token, stored here and handed to on_token."""
        self.token = self.client.issue_token(self.email, self._password)
        log.info("StreamIoT: logged in as %s", self.email)
        if self._on_token is not None:
            self._on_token(self.token)
        return self.token

    def _with_login(self, call, expired=_is_expired_token_answer):
        """Run call(token); on an expired-token answer, log in again once and retry once."""
        if not self.token:
            self.login()
            return call(self.token)  # a token this fresh is not the problem: no second login
        try:
            return call(self.token)
        except (Unauthorized, ServerError) as exc:
            if not expired(exc):
                raise
        self.login()
        return call(self.token)

    def _bearer(self, method: str, path: str, **kwargs) -> tuple[requests.Response, str]:
        """A call to the users or things service as this user: (2xx response, operation)."""
        operation = f"{method} {path}"
        resp = self._with_login(
            lambda token: self.client._send(
                method, self.client._url(path), operation, authorization=f"Bearer {token}", **kwargs
            )
        )
        return resp, operation

    # --- users ----------------------------------------------------------------

    def profile(self) -> dict:
        """GET /users/profile: {"id", "email"} of this login."""
        resp, operation = self._bearer("GET", "/users/profile")
        return self.client._json(resp, operation)

    # --- things ---------------------------------------------------------------

    def create_thing(self, name: str, metadata: dict | None = None, key: str | None = None) -> str:
        """POST /things; the id (its key comes from get_thing, or use create_things)."""
        body: dict[str, object] = {"name": name}
        if metadata is not None:
            body["metadata"] = metadata
        if key is not None:
            body["key"] = key
        resp, operation = self._bearer("POST", "/things", json_body=body)
        return self.client._created_id(resp, operation, "things")

    def create_things(self, things: list[dict]) -> list[dict]:
        """POST /things/bulk: [{"id","name","key","metadata"?}] in one call."""
        resp, operation = self._bearer("POST", "/things/bulk", json_body=list(things))
        return self._items(self.client._json(resp, operation), "things", resp, operation)

    def get_thing(self, thing_id: str) -> dict:
        """GET /things/{id}: {"id","name","key","metadata"?}.

        An unknown id (or another user's) gives ServerError, the platform's empty 500
        after one login again; a deleted one gives NotFound.
        """
        resp, operation = self._bearer("GET", f"/things/{_quote(thing_id)}")
        return self.client._json(resp, operation)

    def list_things(self, *, offset: int = 0, limit: int = PAGE_SIZE, name: str | None = None,
                    metadata: dict | None = None, order: str | None = None, dir: str | None = None) -> dict:
        """GET /things: one page. `name` is the platform's substring filter, NOT an exact match."""
        return self._page("/things", "things", offset, limit, name, metadata, order, dir)

    def find_things(self, name: str) -> list[dict]:
        """Every thing whose name is exactly `name` (names are not unique)."""
        return [t for t in self._all("/things", "things", name) if t.get("name") == name]

    def find_thing(self, name: str) -> dict | None:
        """The thing named exactly `name`, or None."""
        return next((t for t in self._all("/things", "things", name) if t.get("name") == name), None)

    def delete_thing(self, thing_id: str) -> None:
        """DELETE /things/{id}; repeatable."""
        resp, operation = self._bearer("DELETE", f"/things/{_quote(thing_id)}")
        self.client._expect_empty(resp, operation)

    def list_thing_channels(self, thing_id: str, *, offset: int = 0, limit: int = PAGE_SIZE) -> dict:
        """GET /things/{id}/channels: one page of the channels the thing is connected to."""
        return self._page(f"/things/{_quote(thing_id)}/channels", "channels", offset, limit)

    # --- channels -------------------------------------------------------------

    def create_channel(self, name: str, metadata: dict | None = None) -> str:
        """POST /channels; the id."""
        body: dict[str, object] = {"name": name}
        if metadata is not None:
            body["metadata"] = metadata
        resp, operation = self._bearer("POST", "/channels", json_body=body)
        return self.client._created_id(resp, operation, "channels")

    def create_channels(self, channels: list[dict]) -> list[dict]:
        """POST /channels/bulk: [{"id","name","metadata"?}] in one call."""
        resp, operation = self._bearer("POST", "/channels/bulk", json_body=list(channels))
        return self._items(self.client._json(resp, operation), "channels", resp, operation)

    def get_channel(self, channel_id: str) -> dict:
        """GET /channels/{id}."""
        resp, operation = self._bearer("GET", f"/channels/{_quote(channel_id)}")
        return self.client._json(resp, operation)

    def list_channels(self, *, offset: int = 0, limit: int = PAGE_SIZE, name: str | None = None,
                      metadata: dict | None = None, order: str | None = None, dir: str | None = None) -> dict:
        """GET /channels: one page. `name` is the platform's substring filter, NOT an exact match."""
        return self._page("/channels", "channels", offset, limit, name, metadata, order, dir)

    def find_channels(self, name: str) -> list[dict]:
        """Every channel whose name is exactly `name`."""
        return [c for c in self._all("/channels", "channels", name) if c.get("name") == name]

    def find_channel(self, name: str) -> dict | None:
        """The channel named exactly `name`, or None."""
        return next((c for c in self._all("/channels", "channels", name) if c.get("name") == name), None)

    def delete_channel(self, channel_id: str) -> None:
        """DELETE /channels/{id}; repeatable."""
        resp, operation = self._bearer("DELETE", f"/channels/{_quote(channel_id)}")
        self.client._expect_empty(resp, operation)

    def list_channel_things(self, channel_id: str, *, offset: int = 0, limit: int = PAGE_SIZE) -> dict:
        """GET /channels/{id}/things: one page of the things connected to the channel."""
        return self._page(f"/channels/{_quote(channel_id)}/things", "things", offset, limit)

    # --- connections ----------------------------------------------------------

    def connect(self, channel_ids, thing_ids) -> None:
        """POST /connect every thing to every channel; Conflict when already connected."""
        resp, operation = self._bearer("POST", "/connect", json_body=self._pairs(channel_ids, thing_ids))
        self.client._expect_empty(resp, operation)

    def disconnect(self, channel_ids, thing_ids) -> None:
        """PUT /disconnect; NotFound when not connected."""
        resp, operation = self._bearer("PUT", "/disconnect", json_body=self._pairs(channel_ids, thing_ids))
        self.client._expect_empty(resp, operation)

    def connect_thing(self, channel_id: str, thing_id: str) -> None:
        """PUT /channels/{c}/things/{t}: the older single connect; Conflict when already connected."""
        resp, operation = self._bearer("PUT", f"/channels/{_quote(channel_id)}/things/{_quote(thing_id)}")
        self.client._expect_empty(resp, operation)

    # --- reader ---------------------------------------------------------------

    def read_messages(self, channel_id: str, **query) -> dict:
        """The reader as this user (Bearer); same query and answer as StreamIoT.read_messages."""
        return self._with_login(
            lambda token: self.client.read_messages(channel_id, token=token, **query),
            expired=_is_expired_reader_token_answer,
        )

    # --- helpers --------------------------------------------------------------

    @staticmethod
    def _pairs(channel_ids, thing_ids) -> dict:
        as_list = lambda ids: [ids] if isinstance(ids, str) else list(ids)  # noqa: E731
        return {"channel_ids": as_list(channel_ids), "thing_ids": as_list(thing_ids)}

    @staticmethod
    def _items(payload: dict, key: str, resp: requests.Response, operation: str) -> list[dict]:
        items = payload.get(key)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ProtocolError(
                f"StreamIoT answered {operation} without a list of {key}",
                status=resp.status_code,
                body=_body_text(resp),
                operation=operation,
            )
        return items

    def _page(self, path, key, offset, limit, name=None, metadata=None, order=None, dir=None) -> dict:
        params = {"offset": offset, "limit": limit}
        if name is not None:
            params["name"] = name
        if metadata is not None:
            params["metadata"] = json.dumps(metadata, separators=(",", ":"))
        if order is not None:
            params["order"] = order
        if dir is not None:
            params["dir"] = dir
        resp, operation = self._bearer("GET", path, params=params)
        page = self.client._json(resp, operation)
        # An empty page may come with the list absent or null: both mean no items.
        if page.get(key) is None:
            page[key] = []
        self._items(page, key, resp, operation)
        return page

    def _all(self, path: str, key: str, name: str) -> Iterator[dict]:
        """Every item the substring filter returns for `name`, page after page."""
        offset = 0
        for _ in range(MAX_PAGES):
            page = self._page(path, key, offset, PAGE_SIZE, name=name)
            items = page[key]
            yield from items
            offset += len(items)
            total = page.get("total")
            if not items or not isinstance(total, int) or offset >= total:
                return
        log.warning("StreamIoT: stopped paging %s after %d pages", path, MAX_PAGES)

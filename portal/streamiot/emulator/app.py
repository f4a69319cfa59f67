"""The emulator's WSGI app: StreamIoT's services, answering exactly as STREAMIOT_API.md says.

The users, things, HTTP adapter and reader services of Mainflux 0.13.0, quirks included.

Proxy paths are served at the root (`/users`, `/tokens`, `/things`, `/channels`,
`/connect`, `/disconnect`, `/http/...`) and the reader under `/reader`.
"""
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, TypedDict

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from portal.streamiot.emulator import senml, tokens
from portal.streamiot.emulator.store import Store

log = logging.getLogger(__name__)

# The platform's error messages, word for word: internal/apiutil/errors.go and pkg/errors
# of release 0.13.0, and readers/postgres/messages.go for ERR_READ.
ERR_BEARER = "missing or invalid bearer user token"
ERR_BEARER_KEY = "missing or invalid bearer entity key"
ERR_AUTHENTICATION = "failed to perform authentication over the entity"
ERR_AUTHORIZATION = "failed to perform authorization over the entity"
ERR_CONFLICT = "entity already exists"
ERR_NOT_FOUND = "entity not found"
ERR_MALFORMED = "malformed entity specification"
ERR_PASSWORD = "password does not meet the requirements"
ERR_CONTENT_TYPE = "unsupported content type"
ERR_EMPTY_LIST = "empty list provided"
ERR_LIMIT = "invalid limit size"
ERR_NAME_SIZE = "invalid name size"
ERR_ORDER = "invalid list order provided"
ERR_DIRECTION = "invalid list direction provided"
ERR_QUERY = "invalid query parameters"
ERR_COMPARATOR = "invalid comparator"
ERR_SUBTOPIC = "malformed subtopic"
ERR_READ = "failed to read messages from postgres database"

DEPRECATED_THING = (
    "This endpoint will be depreciated in v1.0.0. It will be replaced with the bulk "
    "endpoint currently found at /things/bulk."
)
DEPRECATED_CHANNEL = (
    "This endpoint will be depreciated in v1.0.0. It will be replaced with the bulk "
    "endpoint currently found at /channels/bulk."
)
DEPRECATED_CONNECT = (
    "This endpoint will be depreciated in v1.0.0. It will be replaced with the bulk "
    "endpoint found at /connect."
)

MAX_NAME = 1024  # maxNameSize, things/api/things/http/requests.go
MAX_UINT64 = 2**64 - 1
THINGS_MAX_LIMIT = 100
READER_MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
MIN_PASSWORD = 8
COMPARATORS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
# Passwords in the emulator are test credentials; a cheap salted hash is enough.
PASSWORD_ROUNDS = 1000

_EMAIL_USER = re.compile(r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.-]+\Z")
_EMAIL_USER_DOTS = re.compile(r"(^\.)|(\.$)|(\.\.)")
_EMAIL_HOST = re.compile(r"[^\s]+\.[^\s]+\Z")
# A table name PostgreSQL would look up (and not find) rather than fail to parse.
_SQL_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity|nan)\Z", re.I)


# --- responses ---------------------------------------------------------------


class Answer(Exception):
    """Raised anywhere in a handler to answer at once (an error, mostly)."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def _go_numbers(value):
    """Integral floats as ints, as Go's encoder writes them (`1234`, not `1234.0`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _go_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_numbers(item) for item in value]
    return value


def _encode(obj) -> bytes:
    # Go's json.Encoder ends every document with a newline.
    return (json.dumps(_go_numbers(obj), separators=(",", ":")) + "\n").encode()


def ok(status: int, obj=None, headers: dict | None = None) -> Response:
    """A users/things success: `application/json` even when the body is empty."""
    body = b"" if obj is None else _encode(obj)
    return Response(body, status=status, headers=headers, content_type="application/json")


def error(status: int, message: str) -> Response:
    """An error with a JSON body that the platform labels `text/plain`."""
    return Response(
        _encode({"error": message}), status=status, content_type="text/plain; charset=utf-8"
    )


def empty(status: int) -> Response:
    """An empty answer without any content type (empty 500s, the adapter's 202)."""
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    return response


def fail(status: int, message: str | None = None) -> NoReturn:
    raise Answer(error(status, message) if message else empty(status))


# --- request helpers ---------------------------------------------------------


def _json_body(request: Request, expect: type):
    if "application/json" not in request.headers.get("Content-Type", ""):
        fail(415, ERR_CONTENT_TYPE)
    try:
        body = json.loads(request.get_data(), parse_constant=_reject)
    except (ValueError, UnicodeDecodeError):
        fail(400, ERR_MALFORMED)
    if body is None:  # Go decodes `null` into an empty struct or list
        body = expect()
    if not isinstance(body, expect):
        fail(400, ERR_MALFORMED)
    return body


def _reject(name):
    raise ValueError(name)


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
    if not token:
        fail(401, ERR_BEARER)
    return token


def _thing_key(request: Request) -> str:
    """The key of `Authorization: Thing <key>` (apiutil.ExtractThingKey: case-sensitive
    prefix), else ""."""
    header = request.headers.get("Authorization", "")
    return header[len("Thing "):] if header.startswith("Thing ") else ""


def _publisher_key(request: Request) -> str:
    """The HTTP adapter's key: the password of Basic auth when the header is Basic
    (Go's Request.BasicAuth), else the `Thing ` key (http/api/transport.go)."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        _, sep, password = decoded.partition(":")
        if sep:
            return password
    return _thing_key(request)


def _query_value(request: Request, key: str) -> str | None:
    """One query value as the platform's router (go-zoo/bone GetQuery) hands it over: every
    value is split at commas first, so `a,b` counts as two values, and more than one value
    is `invalid query parameters` (internal/apiutil/transport.go, Read*Query)."""
    values = [part for value in request.args.getlist(key) for part in value.split(",")]
    if len(values) > 1:
        fail(400, ERR_QUERY)
    return values[0] if values else None


def _query_uint(request: Request, key: str, default: int) -> int:
    text = _query_value(request, key)
    if text is None:
        return default
    # strconv.ParseUint(text, 10, 64): plain ASCII digits that fit 64 bits.
    if not text.isascii() or not text.isdigit() or int(text) > MAX_UINT64:
        fail(400, ERR_QUERY)
    return int(text)


def _query_float(request: Request, key: str) -> float | None:
    text = _query_value(request, key)
    if text is None:
        return None
    if not _FLOAT.match(text):
        fail(400, ERR_QUERY)
    return float(text)


def _query_bool(request: Request, key: str) -> bool | None:
    text = _query_value(request, key)
    if text is None:
        return None
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    fail(400, ERR_QUERY)


def _metadata_query(request: Request) -> dict | None:
    """`metadata` as apiutil.ReadMetadataQuery reads it: JSON decoded into a Go map, so
    anything but an object (or `null`, which means no filter) is `invalid query
    parameters`, an empty value included."""
    text = _query_value(request, "metadata")
    if text is None:
        return None
    try:
        metadata = json.loads(text, parse_constant=_reject)
    except ValueError:
        fail(400, ERR_QUERY)
    if metadata is not None and not isinstance(metadata, dict):
        fail(400, ERR_QUERY)
    return metadata or None


def _string_field(body: dict, key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        fail(400, ERR_MALFORMED)
    return value


def _metadata_field(body: dict) -> dict | None:
    value = body.get("metadata")
    if value is not None and not isinstance(value, dict):
        fail(400, ERR_MALFORMED)
    return value or None


def _canonical_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def valid_email(email: str) -> bool:
    if not 5 <= len(email) <= 254:
        return False
    at = email.rfind("@")
    if at <= 0 or at > len(email) - 3:
        return False
    user, host = email[:at], email[at + 1:]
    if len(user) > 64 or _EMAIL_USER_DOTS.search(user) or not _EMAIL_USER.match(user):
        return False
    return bool(_EMAIL_HOST.match(host))


def _hash_password(password: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PASSWORD_ROUNDS)
    return f"{salt}${digest.hex()}"


def _check_password(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(_hash_password(password, salt), stored)


# --- the views of things and channels -----------------------------------------


def _thing_view(row) -> dict:
    view = {"id": row["id"]}
    if row["name"]:
        view["name"] = row["name"]
    view["key"] = row["key"]
    metadata = json.loads(row["metadata"]) if row["metadata"] else None
    if metadata:
        view["metadata"] = metadata
    return view


def _channel_view(row) -> dict:
    view = {"id": row["id"]}
    if row["name"]:
        view["name"] = row["name"]
    metadata = json.loads(row["metadata"]) if row["metadata"] else None
    if metadata:
        view["metadata"] = metadata
    return view


class _Kind(TypedDict):
    singular: str
    view: Callable[[Any], dict]
    deprecated: str


KINDS: dict[str, _Kind] = {
    "things": {"singular": "thing", "view": _thing_view, "deprecated": DEPRECATED_THING},
    "channels": {"singular": "channel", "view": _channel_view, "deprecated": DEPRECATED_CHANNEL},
}


def _message_view(row) -> dict:
    view = {"channel": row["channel"]}
    if row["subtopic"]:
        view["subtopic"] = row["subtopic"]
    view["publisher"] = row["publisher"]
    view["protocol"] = row["protocol"]
    view["name"] = row["name"]
    if row["unit"]:
        view["unit"] = row["unit"]
    view["time"] = row["time"]
    if row["update_time"] is not None:
        view["update_time"] = row["update_time"]
    if row["value"] is not None:
        view["value"] = row["value"]
    if row["string_value"] is not None:
        view["string_value"] = row["string_value"]
    if row["data_value"] is not None:
        view["data_value"] = row["data_value"]
    if row["bool_value"] is not None:
        view["bool_value"] = bool(row["bool_value"])
    if row["sum"] is not None:
        view["sum"] = row["sum"]
    return view


# --- the app -------------------------------------------------------------------


class _Page(TypedDict):
    """A list call's query, checked (see Emulator._page_query)."""

    offset: int
    limit: int
    name: str
    order: str
    dir: str
    metadata: dict | None
    disconnected: bool
    token: str


class _ReadQuery(TypedDict):
    """The reader's paging and format; its filters are echoed back separately."""

    offset: int
    limit: int
    format: str


# Endpoints that change which thing may use which channel (or with which key).
_ACCESS_CHANGES = frozenset({"create", "create_bulk", "remove", "update_key", "connect", "disconnect",
                             "connect_one", "disconnect_one"})


class Emulator:
    """A WSGI app; state lives in its own SQLite file at `db_path`."""

    def __init__(
        self,
        db_path: str,
        token_ttl: float = 36000,
        *,
        clock=None,
        self_register: bool = True,
        admin: tuple[str, str] | None = None,
    ):
        self.store = Store(db_path)
        self.db_path = self.store.path
        self.token_ttl = token_ttl
        self.clock = clock or time.time
        self.self_register = self_register
        # The MQTT adapter (emulator/broker.py), when one is attached.
        self.broker: Any = None
        self.admin_email = None
        if admin:
            self.admin_email = admin[0]
            with self.store.transaction() as conn:
                if not conn.execute("SELECT 1 FROM users WHERE email = ?", (admin[0],)).fetchone():
                    conn.execute(
                        "INSERT INTO users (id, email, password_hash) VALUES (?, ?, ?)",
                        (str(uuid.uuid4()), admin[0], _hash_password(admin[1])),
                    )
        self.url_map = Map(
            [
                Rule("/users", methods=["POST"], endpoint="create_user"),
                Rule("/users/profile", methods=["GET"], endpoint="profile"),
                Rule("/tokens", methods=["POST"], endpoint="issue_token"),
                Rule("/<any(things,channels):kind>", methods=["POST"], endpoint="create"),
                Rule("/<any(things,channels):kind>/bulk", methods=["POST"], endpoint="create_bulk"),
                Rule("/<any(things,channels):kind>", methods=["GET"], endpoint="list"),
                Rule("/<any(things,channels):kind>/<id>", methods=["GET"], endpoint="view"),
                Rule("/<any(things,channels):kind>/<id>", methods=["DELETE"], endpoint="remove"),
                Rule("/things/<id>/key", methods=["PATCH"], endpoint="update_key"),
                Rule("/things/<id>/channels", methods=["GET"], endpoint="channels_of_thing"),
                Rule("/channels/<id>/things", methods=["GET"], endpoint="things_of_channel"),
                Rule("/channels/<channel_id>/things/<thing_id>", methods=["PUT"], endpoint="connect_one"),
                Rule(
                    "/channels/<channel_id>/things/<thing_id>",
                    methods=["DELETE"],
                    endpoint="disconnect_one",
                ),
                Rule("/connect", methods=["POST"], endpoint="connect"),
                Rule("/disconnect", methods=["PUT"], endpoint="disconnect"),
                Rule("/http/channels/<channel_id>/messages", methods=["POST"], endpoint="publish"),
                Rule(
                    "/http/channels/<channel_id>/messages/<path:subtopic>",
                    methods=["POST"],
                    endpoint="publish",
                ),
                Rule("/reader/channels/<channel_id>/messages", methods=["GET"], endpoint="read"),
            ],
            strict_slashes=False,
            merge_slashes=False,
        )

    def __call__(self, environ, start_response):
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        urls = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = urls.match()
        except NotFound:
            return Response(b"404 page not found\n", status=404, content_type="text/plain; charset=utf-8")
        except MethodNotAllowed:
            return Response(b"Method Not Allowed\n", status=405, content_type="text/plain; charset=utf-8")
        try:
            response = getattr(self, "do_" + endpoint)(request, **args)
        except Answer as answer:
            return answer.response
        except Exception:  # a crash inside the platform: an empty 500, as Go answers
            log.exception("StreamIoT emulator failed on %s %s", request.method, request.path)
            return empty(500)
        if self.broker is not None and endpoint in _ACCESS_CHANGES and response.status_code < 300:
            self.broker.sync()  # who may use the MQTT adapter where
        return response

    def attach_broker(self, broker) -> None:
        """Mirror things, connections and HTTP messages to this MQTT broker from now on."""
        broker.sync()
        self.broker = broker

    # --- identity ---

    def _user_of_token(self, conn, token: str):
        claims = tokens.verify(self.store.token_secret, token, now=self.clock())
        if claims is None:
            return None
        return conn.execute("SELECT * FROM users WHERE id = ?", (claims["issuer_id"],)).fetchone()

    def _things_user(self, conn, token: str):
        """The things service cannot verify the token: an EMPTY 500, not a 401."""
        user = self._user_of_token(conn, token)
        if user is None:
            fail(500)
        return user["id"]

    # --- users service ---

    def do_create_user(self, request):
        body = _json_body(request, dict)
        email = _string_field(body, "email")
        password = _string_field(body, "password")
        metadata = _metadata_field(body)
        with self.store.transaction() as conn:
            if not self.self_register:
                user = self._user_of_token(conn, _bearer(request))
                if user is None:
                    fail(401, ERR_AUTHENTICATION)
                if user["email"] != self.admin_email:
                    fail(403, ERR_AUTHORIZATION)
            if not valid_email(email):
                fail(400, ERR_MALFORMED)
            if len(password) < MIN_PASSWORD:
                fail(400, ERR_PASSWORD)
            if conn.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
                fail(409, ERR_CONFLICT)
            user_id = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO users (id, email, password_hash, metadata) VALUES (?, ?, ?, ?)",
                (user_id, email, _hash_password(password), json.dumps(metadata) if metadata else None),
            )
        return ok(201, headers={"Location": f"/users/{user_id}"})

    def do_issue_token(self, request):
        body = _json_body(request, dict)
        email = _string_field(body, "email")
        password = _string_field(body, "password")
        if not valid_email(email):
            fail(400, ERR_MALFORMED)
        with self.store.transaction() as conn:
            user = conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
        if user is None or not _check_password(password, user["password_hash"]):
            fail(401, ERR_AUTHENTICATION)
        token = tokens.issue(
            self.store.token_secret,
            user_id=user["id"],
            email=user["email"],
            now=self.clock(),
            ttl=self.token_ttl,
        )
        return ok(201, {"token": token})

    def do_profile(self, request):
        token = _bearer(request)
        with self.store.transaction() as conn:
            user = self._user_of_token(conn, token)
        if user is None:
            fail(401, ERR_AUTHENTICATION)
        view = {"id": user["id"], "email": user["email"]}
        if user["metadata"]:
            view["metadata"] = json.loads(user["metadata"])
        return ok(200, view)

    # --- things and channels ---

    def _entity_fields(self, kind: str, body: dict) -> dict:
        name = _string_field(body, "name")
        metadata = _metadata_field(body)
        entity_id = _string_field(body, "id")
        fields: dict[str, str | dict | None] = {"name": name, "metadata": metadata, "id": entity_id}
        if kind == "things":
            fields["key"] = _string_field(body, "key")
        if len(name) > MAX_NAME:
            fail(400, ERR_MALFORMED)
        if entity_id and not _canonical_uuid(entity_id):
            fail(400, ERR_MALFORMED)
        return fields

    def _insert(self, conn, kind: str, owner: str, fields: dict):
        entity_id = fields["id"] or str(uuid.uuid4())
        taken = conn.execute(f"SELECT 1 FROM {kind} WHERE id = ?", (entity_id,)).fetchone()
        metadata = json.dumps(fields["metadata"]) if fields["metadata"] else None
        if kind == "things":
            key = fields["key"] or str(uuid.uuid4())
            if taken or conn.execute("SELECT 1 FROM things WHERE key = ?", (key,)).fetchone():
                fail(409, ERR_CONFLICT)
            conn.execute(
                "INSERT INTO things (id, owner, name, key, metadata) VALUES (?, ?, ?, ?, ?)",
                (entity_id, owner, fields["name"], key, metadata),
            )
        else:
            if taken:
                fail(409, ERR_CONFLICT)
            conn.execute(
                "INSERT INTO channels (id, owner, name, metadata) VALUES (?, ?, ?, ?)",
                (entity_id, owner, fields["name"], metadata),
            )
        conn.execute("DELETE FROM deleted WHERE kind = ? AND id = ?", (kind, entity_id))
        return conn.execute(f"SELECT * FROM {kind} WHERE id = ?", (entity_id,)).fetchone()

    def do_create(self, request, kind):
        body = _json_body(request, dict)
        token = _bearer(request)
        fields = self._entity_fields(kind, body)
        with self.store.transaction() as conn:
            owner = self._things_user(conn, token)
            row = self._insert(conn, kind, owner, fields)
        headers = {"Location": f"/{kind}/{row['id']}", "Warning-Deprecated": KINDS[kind]["deprecated"]}
        return ok(201, headers=headers)

    def do_create_bulk(self, request, kind):
        body = _json_body(request, list)
        token = _bearer(request)
        if not body:
            fail(400, ERR_EMPTY_LIST)
        if not all(isinstance(item, dict) for item in body):
            fail(400, ERR_MALFORMED)
        all_fields = [self._entity_fields(kind, item) for item in body]
        with self.store.transaction() as conn:
            owner = self._things_user(conn, token)
            rows = [self._insert(conn, kind, owner, fields) for fields in all_fields]
        return ok(201, {kind: [KINDS[kind]["view"](row) for row in rows]})

    def do_view(self, request, kind, id):
        token = _bearer(request)
        with self.store.transaction() as conn:
            owner = self._things_user(conn, token)
            row = conn.execute(f"SELECT * FROM {kind} WHERE id = ? AND owner = ?", (id, owner)).fetchone()
            if row is not None:
                return ok(200, KINDS[kind]["view"](row))
            if self._was_deleted(conn, kind, id, owner):
                fail(404, ERR_NOT_FOUND)
        # Unknown, or another user's: the platform fails deep inside and says nothing.
        fail(500)

    def do_update_key(self, request, id):
        """PATCH /things/{id}/key. The service updates the key in its database only
        (things/service.go UpdateKey): the Redis cache keeps the old key working wherever
        it was used, until the thing is deleted (see _thing_on_channel)."""
        body = _json_body(request, dict)
        key = _string_field(body, "key")
        token = _bearer(request)
        if not key:  # requests.go updateKeyReq.validate
            fail(400, ERR_BEARER_KEY)
        with self.store.transaction() as conn:
            owner = self._things_user(conn, token)
            row = conn.execute("SELECT key FROM things WHERE id = ? AND owner = ?", (id, owner)).fetchone()
            if row is None:  # UPDATE ... WHERE owner AND id touched no row
                fail(404, ERR_NOT_FOUND)
            if conn.execute("SELECT 1 FROM things WHERE key = ? AND id != ?", (key, id)).fetchone():
                fail(409, ERR_CONFLICT)
            conn.execute("UPDATE things SET key = ? WHERE id = ?", (key, id))
        return ok(200)

    def _was_deleted(self, conn, kind, entity_id, owner) -> bool:
        return bool(
            conn.execute(
                "SELECT 1 FROM deleted WHERE kind = ? AND id = ? AND owner = ?", (kind, entity_id, owner)
            ).fetchone()
        )

    def do_remove(self, request, kind, id):
        token = _bearer(request)
        with self.store.transaction() as conn:
            owner = self._things_user(conn, token)
            row = conn.execute(f"SELECT 1 FROM {kind} WHERE id = ? AND owner = ?", (id, owner)).fetchone()
            if row is not None:
                conn.execute(f"DELETE FROM {kind} WHERE id = ?", (id,))
                column = "thing_id" if kind == "things" else "channel_id"
                conn.execute(f"DELETE FROM connections WHERE {column} = ?", (id,))
                if kind == "things":
                    _uncache_thing(conn, id)
                else:  # channelCache.Remove
                    conn.execute("DELETE FROM channel_things WHERE channel_id = ?", (id,))
                conn.execute(
                    "INSERT OR REPLACE INTO deleted (kind, id, owner) VALUES (?, ?, ?)", (kind, id, owner)
                )
                return ok(204)
            if self._was_deleted(conn, kind, id, owner):
                return ok(204)
        fail(500)

    def _page_query(self, request, *, by_connection: bool = False) -> _Page:
        """Query of a list call, checked in the platform's order: parse, token, limits.

        things/api/things/http/transport.go: `decodeList` reads offset, limit, name, order,
        dir and metadata; `decodeListByConnection` (the pages of connected objects) reads
        offset, limit, disconnected, order and dir, and nothing else. Then requests.go
        validates: token, limit, name size (lists only), order, dir.
        """
        offset = _query_uint(request, "offset", 0)
        limit = _query_uint(request, "limit", DEFAULT_LIMIT)
        name, metadata, disconnected = "", None, False
        if by_connection:
            disconnected = _query_bool(request, "disconnected") or False
        else:
            name = _query_value(request, "name") or ""
        order = _query_value(request, "order") or ""
        direction = _query_value(request, "dir") or ""
        if not by_connection:
            metadata = _metadata_query(request)
        page = _Page(
            offset=offset,
            limit=limit,
            name=name,
            order=order,
            dir=direction,
            metadata=metadata,
            disconnected=disconnected,
            token=_bearer(request),
        )
        if not 1 <= page["limit"] <= THINGS_MAX_LIMIT:
            fail(400, ERR_LIMIT)
        if len(page["name"]) > MAX_NAME:
            fail(400, ERR_NAME_SIZE)
        if page["order"] not in ("", "name", "id"):
            fail(400, ERR_ORDER)
        if page["dir"] not in ("", "asc", "desc"):
            fail(400, ERR_DIRECTION)
        return page

    def _select_page(self, conn, kind, where: list[str], params: list, page: _Page):
        if page["name"]:
            where.append("name_like(name, ?)")
            params.append(page["name"])
        if page["metadata"]:
            where.append("json_contains(metadata, ?)")
            params.append(json.dumps(page["metadata"]))
        clause = " AND ".join(where)
        total = conn.execute(f"SELECT COUNT(*) FROM {kind} WHERE {clause}", params).fetchone()[0]
        # The platform orders by id unless told `order=name`, descending unless `dir=asc`.
        column = "name" if page["order"] == "name" else "id"
        direction = "ASC" if page["dir"] == "asc" else "DESC"
        rows = conn.execute(
            f"SELECT * FROM {kind} WHERE {clause} ORDER BY {column} {direction}, id {direction} "
            "LIMIT ? OFFSET ?",
            [*params, page["limit"], page["offset"]],
        ).fetchall()
        return total, [KINDS[kind]["view"](row) for row in rows]

    def do_list(self, request, kind):
        page = self._page_query(request)
        with self.store.transaction() as conn:
            owner = self._things_user(conn, page["token"])
            total, items = self._select_page(conn, kind, ["owner = ?"], [owner], page)
        return ok(
            200,
            {
                "total": total,
                "offset": page["offset"],
                "limit": page["limit"],
                "order": page["order"],
                "direction": page["dir"],
                kind: items,
            },
        )

    def _list_connected(self, request, id, kind, own_column, other_column):
        page = self._page_query(request, by_connection=True)
        with self.store.transaction() as conn:
            owner = self._things_user(conn, page["token"])
            membership = "NOT IN" if page["disconnected"] else "IN"
            where = [
                "owner = ?",
                f"id {membership} (SELECT {other_column} FROM connections WHERE {own_column} = ?)",
            ]
            total, items = self._select_page(conn, kind, where, [owner, id], page)
        # These pages never echo an order or direction.
        return ok(200, {"total": total, "offset": page["offset"], "limit": page["limit"],
                        "order": "", "direction": "", kind: items})

    def do_channels_of_thing(self, request, id):
        return self._list_connected(request, id, "channels", "thing_id", "channel_id")

    def do_things_of_channel(self, request, id):
        return self._list_connected(request, id, "things", "channel_id", "thing_id")

    # --- connections ---

    def _connection_lists(self, request):
        body = _json_body(request, dict)
        token = _bearer(request)
        channel_ids, thing_ids = body.get("channel_ids") or [], body.get("thing_ids") or []
        for ids in (channel_ids, thing_ids):
            if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
                fail(400, ERR_MALFORMED)
        if not channel_ids or not thing_ids:
            fail(400, ERR_EMPTY_LIST)
        if not all(channel_ids) or not all(thing_ids):
            fail(400, ERR_MALFORMED)
        return token, channel_ids, thing_ids

    def _check_owned(self, conn, owner, channel_ids, thing_ids):
        for kind, ids in (("channels", channel_ids), ("things", thing_ids)):
            for entity_id in ids:
                if not conn.execute(
                    f"SELECT 1 FROM {kind} WHERE id = ? AND owner = ?", (entity_id, owner)
                ).fetchone():
                    fail(404, ERR_NOT_FOUND)

    def _connect(self, conn, owner, channel_ids, thing_ids):
        self._check_owned(conn, owner, channel_ids, thing_ids)
        for channel_id in channel_ids:
            for thing_id in thing_ids:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO connections (channel_id, thing_id) VALUES (?, ?)",
                    (channel_id, thing_id),
                ).rowcount
                if not inserted:
                    fail(409, ERR_CONFLICT)  # the transaction rolls back every pair

    def _disconnect(self, conn, owner, channel_ids, thing_ids):
        self._check_owned(conn, owner, channel_ids, thing_ids)
        for channel_id in channel_ids:
            for thing_id in thing_ids:
                removed = conn.execute(
                    "DELETE FROM connections WHERE channel_id = ? AND thing_id = ?", (channel_id, thing_id)
                ).rowcount
                if not removed:
                    fail(404, ERR_NOT_FOUND)
                conn.execute(  # channelCache.Disconnect
                    "DELETE FROM channel_things WHERE channel_id = ? AND thing_id = ?", (channel_id, thing_id)
                )

    def do_connect(self, request):
        token, channel_ids, thing_ids = self._connection_lists(request)
        with self.store.transaction() as conn:
            self._connect(conn, self._things_user(conn, token), channel_ids, thing_ids)
        return ok(200)

    def do_disconnect(self, request):
        token, channel_ids, thing_ids = self._connection_lists(request)
        with self.store.transaction() as conn:
            self._disconnect(conn, self._things_user(conn, token), channel_ids, thing_ids)
        return ok(200)

    def do_connect_one(self, request, channel_id, thing_id):
        token = _bearer(request)
        with self.store.transaction() as conn:
            self._connect(conn, self._things_user(conn, token), [channel_id], [thing_id])
        return ok(200, headers={"Warning-Deprecated": DEPRECATED_CONNECT})

    def do_disconnect_one(self, request, channel_id, thing_id):
        token = _bearer(request)
        with self.store.transaction() as conn:
            self._disconnect(conn, self._things_user(conn, token), [channel_id], [thing_id])
        return ok(204)

    # --- HTTP adapter ---

    def _thing_on_channel(self, conn, key: str, channel_id: str) -> str | None:
        """The id of the thing whose key may use the channel, else None.

        things/service.go CanAccessByKey: the Redis caches first (key -> thing id, and the
        channel's set of thing ids); on a miss, the database, and a hit there is cached.
        Nothing but deleting the thing drops a key from the cache, so a key replaced with
        PATCH /things/{id}/key keeps working where it was used before.
        """
        cached = conn.execute(
            "SELECT thing_keys.thing_id FROM thing_keys JOIN channel_things "
            "ON channel_things.thing_id = thing_keys.thing_id "
            "WHERE thing_keys.key = ? AND channel_things.channel_id = ?",
            (key, channel_id),
        ).fetchone()
        if cached is not None:
            return cached["thing_id"]
        row = conn.execute(
            "SELECT things.id FROM things JOIN connections ON connections.thing_id = things.id "
            "WHERE things.key = ? AND connections.channel_id = ?",
            (key, channel_id),
        ).fetchone()
        if row is None:
            return None
        conn.execute("INSERT OR REPLACE INTO thing_keys (key, thing_id) VALUES (?, ?)", (key, row["id"]))
        conn.execute("INSERT OR REPLACE INTO thing_ids (thing_id, key) VALUES (?, ?)", (row["id"], key))
        conn.execute(
            "INSERT OR IGNORE INTO channel_things (channel_id, thing_id) VALUES (?, ?)", (channel_id, row["id"])
        )
        return row["id"]

    def do_publish(self, request, channel_id, subtopic=""):
        if not request.headers.get("Content-Type", "").startswith("application/senml+json"):
            fail(415, ERR_CONTENT_TYPE)
        subtopic = _parse_subtopic(subtopic)
        key = _publisher_key(request)
        if not key:  # http/api/requests.go: publishReq.validate -> apiutil.ErrBearerToken
            fail(401, ERR_BEARER)
        payload = request.get_data()
        now = self.clock()
        with self.store.transaction() as conn:
            thing_id = self._thing_on_channel(conn, key, channel_id)
            if thing_id is None:
                fail(500)
            try:
                records = senml.resolve(payload, now=now)
            except senml.InvalidPack:
                # Accepted, then dropped by the message writer without a word.
                records = []
            for record in records:
                conn.execute(
                    "INSERT INTO messages (channel, subtopic, publisher, protocol, name, unit, time, "
                    "update_time, value, string_value, bool_value, data_value, sum) "
                    "VALUES (?, ?, ?, 'http', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        channel_id,
                        subtopic,
                        thing_id,
                        record["name"],
                        record.get("unit"),
                        record["time"],
                        record.get("update_time"),
                        record.get("value"),
                        record.get("string_value"),
                        record.get("bool_value"),
                        record.get("data_value"),
                        record.get("sum"),
                    ),
                )
        if self.broker is not None:
            self.broker.publish(channel_id, subtopic, payload)
        return empty(202)

    # --- reader ---

    def do_read(self, request, channel_id):
        """readers/api: decode (transport.go), validate (requests.go), authorize, then the
        PostgreSQL reader (readers/postgres/messages.go).

        The query lands in readers.PageMetadata, whose fields are all `omitempty`: a zero
        value (`v=0`, `vb=false`, `from=0`, `to=0`, an empty string) is neither a filter
        nor echoed back.
        """
        offset = _query_uint(request, "offset", 0)
        limit = _query_uint(request, "limit", DEFAULT_LIMIT)
        given_format = _query_value(request, "format")  # absent: "messages"; `format=`: ""
        query = _ReadQuery(
            offset=offset, limit=limit, format="messages" if given_format is None else given_format
        )
        echoed: dict[str, str | float | bool] = {}
        for key in ("subtopic", "publisher", "protocol", "name", "comparator", "vs", "vd"):
            text = _query_value(request, key)
            if text:
                echoed[key] = text
        for key in ("v", "from", "to"):
            number = _query_float(request, key)
            if number:  # 0 is Go's zero value: ignored
                echoed[key] = number
        if _query_bool(request, "vb"):  # false is Go's zero value: ignored
            echoed["vb"] = True

        # apiutil.ExtractBearerToken / ExtractThingKey: exact prefixes, no Basic auth.
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        key = _thing_key(request)
        if not token and not key:
            fail(401, ERR_BEARER)
        if not 1 <= query["limit"] <= READER_MAX_LIMIT:
            fail(400, ERR_LIMIT)
        if "comparator" in echoed and echoed["comparator"] not in COMPARATORS:
            fail(400, ERR_COMPARATOR)

        with self.store.transaction() as conn:
            if token:
                # A token the auth service refuses, and a channel that does not exist, end
                # the same way. Release 0.13.0 checks only that the channel exists, not
                # whose it is.
                if self._user_of_token(conn, token) is None:
                    fail(500, ERR_AUTHORIZATION)
                if not conn.execute("SELECT 1 FROM channels WHERE id = ?", (channel_id,)).fetchone():
                    fail(500, ERR_AUTHORIZATION)
            elif self._thing_on_channel(conn, key, channel_id) is None:
                fail(500, ERR_AUTHORIZATION)
            table = query["format"] or "messages"
            if table != "messages":
                # Any other format is read from the table of that name, ordered by a
                # `created` column. No such table: an EMPTY page whose paging is zero
                # (MessagesPage{}); anything PostgreSQL cannot run: errReadMessages.
                if not _SQL_IDENTIFIER.match(table) or table.lower() == "messages":
                    fail(500, ERR_READ)
                return Response(_encode({"offset": 0, "limit": 0, "total": 0}), status=200,
                                content_type="application/json")
            total, messages = self._messages(conn, channel_id, echoed, query)

        page: dict[str, object] = {"offset": query["offset"], "limit": query["limit"]}
        for key in ("subtopic", "publisher", "protocol", "name", "v", "comparator", "vb", "vs", "vd", "from", "to"):
            if key in echoed:
                page[key] = echoed[key]
        if query["format"]:
            page["format"] = query["format"]
        page["total"] = total
        if messages:  # `omitempty`: no `messages` key at all on an empty page
            page["messages"] = messages
        return Response(_encode(page), status=200, content_type="application/json")

    def _messages(self, conn, channel_id, echoed, query):
        where, params = ["channel = ?"], [channel_id]
        for key, column in (
            ("subtopic", "subtopic"),
            ("publisher", "publisher"),
            ("protocol", "protocol"),
            ("name", "name"),
            ("vs", "string_value"),
            ("vd", "data_value"),
        ):
            if key in echoed:
                where.append(f"{column} = ?")
                params.append(echoed[key])
        if "v" in echoed:
            where.append(f"value {COMPARATORS[echoed.get('comparator', 'eq')]} ?")
            params.append(echoed["v"])
        if "vb" in echoed:
            where.append("bool_value = ?")
            params.append(1 if echoed["vb"] else 0)
        if "from" in echoed:
            where.append("time >= ?")
            params.append(echoed["from"])
        if "to" in echoed:
            where.append("time < ?")
            params.append(echoed["to"])
        clause = " AND ".join(where)
        total = conn.execute(f"SELECT COUNT(*) FROM messages WHERE {clause}", params).fetchone()[0]
        rows = conn.execute(
            f"SELECT * FROM messages WHERE {clause} ORDER BY time DESC, seq DESC LIMIT ? OFFSET ?",
            [*params, query["limit"], query["offset"]],
        ).fetchall()
        return total, [_message_view(row) for row in rows]


def _uncache_thing(conn, thing_id: str) -> None:
    """thingCache.Remove(id): drops "thing:<id>" and the ONE key it points at (the key the
    thing last used). The channel sets keep the id (things/redis/things.go)."""
    row = conn.execute("SELECT key FROM thing_ids WHERE thing_id = ?", (thing_id,)).fetchone()
    if row is not None:
        conn.execute("DELETE FROM thing_keys WHERE key = ?", (row["key"],))
        conn.execute("DELETE FROM thing_ids WHERE thing_id = ?", (thing_id,))


def _parse_subtopic(path: str) -> str:
    """`a/b` -> `a.b`; wildcards cannot be published to."""
    parts = [part for part in path.split("/") if part]
    if any("*" in part or ">" in part for part in parts):
        fail(400, ERR_SUBTOPIC)
    return ".".join(parts)

"""The session cookie, checked once per process: Flask's signed cookie, whose signature
(HMAC, base64, zlib, JSON) is verified the first time a worker sees that exact cookie and
remembered until it expires. A logged-in browser sends the same cookie on every request
until its content changes, and checking it again was a tenth of a small page. Only
cookies that passed the check are remembered, keyed by their whole text, so a forged or
altered cookie is checked (and refused) like before; logging out, timeouts and revoked
sessions are decided server-side (portal/auth.py), not by the cookie.

The signing serializer is built once per key set, not two or three times per request as
Flask does (building one also round-trips a test value through JSON)."""
import time

from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Cookies remembered per process at most (then it starts again empty): one per browser
# using this worker is plenty.
_MAX_REMEMBERED = 4096
_PLAIN = (str, bool, int, float, type(None))


class VerifiedCookieSessions(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._verified: dict[str, tuple[float, dict]] = {}
        self._serializer: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app) -> URLSafeTimedSerializer | None:
        keys = (id(app), app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._serializer is None or self._serializer[0] != keys:
            self._serializer = (keys, super().get_signing_serializer(app))
        return self._serializer[1]

    def open_session(self, app, request) -> SecureCookieSession | None:
        value = request.cookies.get(self.get_cookie_name(app))
        known = self._verified.get(value) if value else None
        if known is not None and time.time() < known[0]:
            return self.session_class(known[1])  # a copy: the request may change its session
        serializer = self.get_signing_serializer(app)
        if serializer is None or not value:
            return super().open_session(app, request)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        try:
            data, signed_at = serializer.loads(value, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        # Plain values only: a session holding lists (flashes waiting) is read once and changes.
        if all(isinstance(v, _PLAIN) for v in data.values()):
            if len(self._verified) >= _MAX_REMEMBERED:
                self._verified.clear()
            self._verified[value] = (signed_at.timestamp() + max_age, data)
        return self.session_class(data)

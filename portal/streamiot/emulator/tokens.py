"""Login tokens of the emulator: HS256 JWTs shaped like the ones Mainflux 0.13.0 issues."""
import base64
import hashlib
import hmac
import json

ISSUER = "mainflux.auth"
LOGIN_KEY = 0  # Mainflux's key type for a login token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, signing_input: str) -> str:
    return _b64(hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest())


def issue(secret: bytes, *, user_id: str, email: str, now: float, ttl: float) -> str:
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "exp": int(now + ttl),
        "iat": int(now),
        "iss": ISSUER,
        "sub": email,
        "issuer_id": user_id,
        "type": LOGIN_KEY,
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return f"{signing_input}.{_sign(secret, signing_input)}"


def verify(secret: bytes, token: str, *, now: float) -> dict | None:
    """The claims of a valid, unexpired login token, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    signing_input = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, signing_input), parts[2]):
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or now >= exp:
        return None
    if claims.get("type") != LOGIN_KEY or not isinstance(claims.get("issuer_id"), str):
        return None
    return claims

"""Secrets at rest (AES-256-GCM bound to table/column/row), keyed digests, argon2id
passwords, and X25519 key helpers for gateways and mailboxes."""
import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import time
import unicodedata
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey as NaclPrivateKey
from nacl.public import PublicKey as NaclPublicKey
from nacl.public import SealedBox

_VERSION = b"\x01"


class DecryptionError(Exception):
    """A stored secret could not be decrypted (wrong key, or moved to another row)."""


class HasherBusy(Exception):
    """Every password-hash slot of this machine stayed taken for PASSWORD_HASH_WAIT_SECONDS:
    the caller answers "try again in `retry_after` seconds" (429), never a 5xx."""

    def __init__(self, retry_after: int):
        self.message = (f"Many people are signing in right now. Please try again in {retry_after} "
                        f"second{'s' if retry_after != 1 else ''}.")
        super().__init__(self.message)
        self.retry_after = retry_after


class InvalidPublicKey(ValueError):
    """Text that is not an X25519 public key; the message says why in plain words."""


def generate_data_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _data_key() -> bytes:
    raw = current_app.config["IOTLOCK_DATA_KEY"]
    try:
        key = base64.urlsafe_b64decode(raw.encode())
    except (binascii.Error, ValueError) as exc:
        raise RuntimeError("IOTLOCK_DATA_KEY is not url-safe base64") from exc
    if len(key) != 32:
        raise RuntimeError("IOTLOCK_DATA_KEY must encode 32 bytes")
    return key


def _subkey(purpose: bytes) -> bytes:
    return hmac.new(_data_key(), b"iotlock/" + purpose, hashlib.sha256).digest()


def _aad(table: str, column: str, row_id) -> bytes:
    return f"{table}.{column}:{row_id}".encode()


def encrypt(plaintext: str, *, table: str, column: str, row_id) -> bytes:
    """Encrypt a secret for one column of one row; moved elsewhere it will not decrypt."""
    nonce = os.urandom(12)
    sealed = AESGCM(_subkey(b"aead")).encrypt(nonce, plaintext.encode(), _aad(table, column, row_id))
    return _VERSION + nonce + sealed


def decrypt(blob: bytes, *, table: str, column: str, row_id) -> str:
    if not blob or blob[:1] != _VERSION:
        raise DecryptionError("unknown secret format")
    try:
        plain = AESGCM(_subkey(b"aead")).decrypt(blob[1:13], blob[13:], _aad(table, column, row_id))
    except InvalidTag as exc:
        raise DecryptionError("secret does not decrypt for this row") from exc
    return plain.decode()


def keyed_digest(purpose: str, value: str) -> str:
    """HMAC-SHA256 of a value under a purpose-bound subkey (e.g. PIN uniqueness)."""
    return hmac.new(_subkey(purpose.encode()), value.encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


# --- passwords -----------------------------------------------------------------------

def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(
        time_cost=cfg["ARGON2_TIME_COST"],
        memory_cost=cfg["ARGON2_MEMORY_COST"],
        parallelism=cfg["ARGON2_PARALLELISM"],
        type=Type.ID,
    )


# How often a hash waiting for a slot looks again, in seconds.
_SLOT_POLL = 0.005


@contextlib.contextmanager
def _hash_slot():
    """One of PASSWORD_HASH_CONCURRENCY slots shared by every process on this machine (an
    flock on one of as many files in INSTANCE_DIR; the kernel frees it if the process
    dies), so a burst of logins queues here instead of taking every core from the pages.
    Raises HasherBusy after PASSWORD_HASH_WAIT_SECONDS without one."""
    cfg = current_app.config
    folder = Path(cfg.get("INSTANCE_DIR") or current_app.instance_path) / "password-hash-slots"
    folder.mkdir(parents=True, exist_ok=True)
    size = max(1, int(cfg["PASSWORD_HASH_CONCURRENCY"]))
    wait = float(cfg["PASSWORD_HASH_WAIT_SECONDS"])
    deadline = time.monotonic() + wait
    while True:
        for n in range(size):
            fd = os.open(folder / f"slot-{n}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
            finally:
                os.close(fd)  # closing the only descriptor releases the lock
            return
        if time.monotonic() >= deadline:
            raise HasherBusy(max(1, round(wait)))
        time.sleep(_SLOT_POLL)


def normalize_password(password: str) -> str:
    """NFKC, so the same passphrase typed on another keyboard or OS still matches
    (NIST SP 800-63B 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """Raises HasherBusy when no hash slot came free in time."""
    with _hash_slot():
        return _hasher().hash(normalize_password(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Raises HasherBusy when no hash slot came free in time."""
    password = normalize_password(password)
    with _hash_slot():
        if not stored_hash:
            # Spend the same work as a real check, so unknown accounts are not faster.
            _hasher().hash(password)
            return False
        try:
            return _hasher().verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _hasher().check_needs_rehash(stored_hash)


# --- X25519 --------------------------------------------------------------------------

def generate_keypair() -> tuple[str, str]:
    """A new X25519 pair as (public base64, private base64), raw 32 bytes each."""
    private = X25519PrivateKey.generate()
    priv_raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub_raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(pub_raw).decode(), base64.b64encode(priv_raw).decode()


def public_from_private(private_b64: str) -> str:
    private = X25519PrivateKey.from_private_bytes(base64.b64decode(private_b64))
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def normalize_public_key(text: str) -> str:
    """Accept base64 of the raw 32 bytes or a PEM SubjectPublicKeyInfo; return base64 raw."""
    text = (text or "").strip()
    if not text:
        raise InvalidPublicKey("Paste the device's public key, or let the portal generate one.")
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError) as exc:
            raise InvalidPublicKey("This PEM block is not a readable public key.") from exc
        if not isinstance(key, X25519PublicKey):
            raise InvalidPublicKey("This is a public key, but not an X25519 key.")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPublicKey("Not valid base64: expected 44 characters like 'q83v...='.") from exc
    if len(raw) != 32:
        raise InvalidPublicKey(
            f"An X25519 public key is 32 bytes; this one is {len(raw)} bytes."
        )
    X25519PublicKey.from_public_bytes(raw)
    return base64.b64encode(raw).decode()


# --- the device link: sealed secrets and authenticated messages (docs/device-protocol.md) --
#
# libsodium's primitives (through PyNaCl), so firmware on an ESP32 can use libsodium too:
# crypto_box_seal for secrets sent to a device, X25519 + HKDF-SHA256 for the key both ends
# share, HMAC-SHA256 for every message on a "sealed" gateway.

LINK_INFO = {"command": b"iotlock link v1 portal->gateway", "report": b"iotlock link v1 gateway->portal"}


def seal(public_key_b64: str, plaintext: bytes) -> str:
    """crypto_box_seal of `plaintext` to an X25519 public key, as base64: only the holder of
    the private key can open it; each sealing differs (a fresh ephemeral key)."""
    box = SealedBox(NaclPublicKey(base64.b64decode(public_key_b64)))
    return base64.b64encode(box.encrypt(plaintext)).decode()


def open_sealed(private_key_b64: str, sealed_b64: str) -> bytes:
    """crypto_box_seal_open; raises DecryptionError when it was not sealed to this key."""
    try:
        box = SealedBox(NaclPrivateKey(base64.b64decode(private_key_b64)))
        return box.decrypt(base64.b64decode(sealed_b64, validate=True))
    except (CryptoError, binascii.Error, ValueError, TypeError) as exc:
        raise DecryptionError("not sealed to this key") from exc


def link_key(own_private_b64: str, their_public_b64: str, direction: str) -> bytes:
    """The 32-byte HMAC key of one direction of a gateway link: HKDF-SHA256 (no salt) over
    X25519(own private, their public), info LINK_INFO[direction]. Both ends derive the same
    key, the portal from its household key and the gateway's public key, the gateway from
    its own key and the portal's public key."""
    private = X25519PrivateKey.from_private_bytes(base64.b64decode(own_private_b64))
    shared = private.exchange(X25519PublicKey.from_public_bytes(base64.b64decode(their_public_b64)))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LINK_INFO[direction]).derive(shared)


def mac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 as base64."""
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def mac_ok(key: bytes, message: bytes, claimed) -> bool:
    return isinstance(claimed, str) and hmac.compare_digest(mac(key, message), claimed)

"""What a job handler gets besides its job: the app, the StreamIoT client, household logins."""
import threading

from portal import crypto
from portal.jobs.errors import RetryLater
from portal.models import Account
from portal.streamiot.deployment import client_from_config

_EXT = "iotlock.streamiot"
_lock = threading.Lock()

NOT_LINKED = "waiting for the household's link to StreamIoT"


def get_streamiot(app):
    """The app's StreamIoT client, built once from its config."""
    client = app.extensions.get(_EXT)
    if client is None:
        with _lock:
            client = app.extensions.get(_EXT)
            if client is None:
                client = client_from_config(app.config)
                app.extensions[_EXT] = client
    return client


def set_streamiot(app, client) -> None:
    """Use this client for the app's jobs from now on (tests: a client whose transport
    loses answers or is down; tools: a client with other timeouts)."""
    app.extensions[_EXT] = client


def account_secret(account: Account, column: str) -> str | None:
    """Decrypt one of the household's StreamIoT secrets (None when not stored yet)."""
    blob = getattr(account, column)
    if not blob:
        return None
    return crypto.decrypt(blob, table="accounts", column=column, row_id=account.id)


def seal_account_secret(account: Account, column: str, value: str) -> bytes:
    """Encrypt a value for one secret column of this household's row (the caller assigns it)."""
    return crypto.encrypt(value, table="accounts", column=column, row_id=account.id)


def remember_token(account: Account, token: str) -> None:
    """Keep a fresh StreamIoT login token, encrypted, with the handler's next commit.
    (Not in a transaction of its own: on SQLite that would wait for the write lock the
    handler itself may hold. A token lost to a rollback only costs one login.)"""
    account.streamiot_token_enc = seal_account_secret(account, "streamiot_token_enc", token)


class JobContext:
    def __init__(self, app, job=None, worker_id: str = ""):
        self.app = app
        self.job = job
        self.worker_id = worker_id

    @property
    def streamiot(self):
        return get_streamiot(self.app)

    def user_api(self, account: Account):
        """The household's StreamIoT user; a token refreshed by the client is stored
        encrypted. RetryLater while the household is not linked yet."""
        password = account_secret(account, "streamiot_password_enc")
        if not account.streamiot_email or not password:
            raise RetryLater(NOT_LINKED)
        return self.streamiot.as_user(
            account.streamiot_email,
            password,
            token=account_secret(account, "streamiot_token_enc"),
            on_token=lambda token: remember_token(account, token),
        )

    def portal_thing_key(self, account: Account) -> str:
        """The key of the household's portal thing (the publisher of every portal message).
        RetryLater while the household is not linked yet."""
        key = account_secret(account, "portal_thing_key_enc")
        if not account.portal_thing_id or not key:
            raise RetryLater(NOT_LINKED)
        return key

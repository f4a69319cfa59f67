"""Account jobs: link a new household to StreamIoT (its user, its login, its portal thing),
close a household whose last member deleted their account, and email password-reset links.

Every step is safe to run again after any failure, including one whose answer was
lost: credentials are saved before StreamIoT hears of them, a user that already
exists is fine, and the portal thing is looked up by its exact name before one is
created. Secrets are stored encrypted and never logged.
"""
import contextlib
import logging
import secrets
import uuid

import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.context import account_secret, remember_token, seal_account_secret
from portal.jobs.errors import RetryLater
from portal.jobs.outbox import CLOSE_HOUSEHOLD, LINK_HOUSEHOLD, SEND_PASSWORD_RESET
from portal.jobs.registry import handler
from portal.models import LINK_CONNECTED, LINK_PROBLEM, Account, Gateway, Membership, utcnow
from portal.services import deletion, mail, password_reset
from portal.streamiot import errors as sie

log = logging.getLogger(__name__)


def portal_thing_name(account_id) -> str:
    return f"iotlock-portal-{account_id}"


def streamiot_email(account_id, domain: str) -> str:
    return f"account-{account_id}@{domain}"


def generate_password() -> str:
    # 192 random bits; URL-safe characters pass any password rule of the platform.
    return secrets.token_urlsafe(24)


def _account(job) -> Account | None:
    return db.session.get(Account, uuid.UUID(job.payload["account_id"]))


def _admin_token(streamiot, config) -> str | None:
    """Where a deployment turned self-registration off, users are created by an admin."""
    email, password = config.get("STREAMIOT_ADMIN_EMAIL"), config.get("STREAMIOT_ADMIN_PASSWORD")
    if email and password:
        return streamiot.issue_token(email, password)
    return None


def _link_retrying(job, reason: str, retry_at) -> None:
    account = _account(job)
    if account is None:
        return
    account.link_state = LINK_PROBLEM
    account.link_error = reason
    account.link_retry_at = retry_at
    account.link_updated_at = utcnow()


def _link_gave_up(job, reason: str) -> None:
    account = _account(job)
    if account is None:
        return
    account.link_state = LINK_PROBLEM
    account.link_error = reason
    account.link_retry_at = None
    account.link_updated_at = utcnow()


@handler(LINK_HOUSEHOLD, on_give_up=_link_gave_up, on_retry=_link_retrying)
def link_household(job, ctx) -> None:
    account = _account(job)
    if account is None:
        return  # the household was deleted before it was linked: nothing to do
    streamiot = ctx.streamiot
    email, password = _credentials(account, ctx.app.config)
    _create_user(streamiot, account, email, password, ctx.app.config)
    try:
        api = _login(streamiot, account, email, password)
        thing_id, key = _portal_thing(api, account)
    except sie.Unauthorized:
        # StreamIoT no longer knows this login (its data was reset, say): forget what
        # the portal knew of the user, so the next attempt creates it again.
        db.session.rollback()
        account.streamiot_user_id = None
        account.streamiot_token_enc = None
        db.session.commit()
        raise

    account.portal_thing_id = thing_id
    account.portal_thing_key_enc = seal_account_secret(account, "portal_thing_key_enc", key)
    account.link_state = LINK_CONNECTED
    account.link_error = None
    account.link_retry_at = None
    account.link_updated_at = utcnow()
    db.session.commit()


def _credentials(account: Account, config) -> tuple[str, str]:
    """The household's StreamIoT address and password, generated and committed before
    StreamIoT sees them, so every retry uses the same ones."""
    email = account.streamiot_email
    password = account_secret(account, "streamiot_password_enc")
    if not email or password is None:
        email = account.streamiot_email = streamiot_email(account.id, config["STREAMIOT_USER_DOMAIN"])
        password = generate_password()
        account.streamiot_password_enc = seal_account_secret(account, "streamiot_password_enc", password)
        db.session.commit()
    return email, password


def _create_user(streamiot, account: Account, email: str, password: str, config) -> None:
    if account.streamiot_user_id or account.streamiot_token_enc:
        return  # created by an earlier attempt
    try:
        account.streamiot_user_id = streamiot.create_user(email, password, token=_admin_token(streamiot, config))
        db.session.commit()
    except sie.Conflict:
        pass  # an earlier attempt created it and its answer was lost


def _login(streamiot, account: Account, email: str, password: str):
    """The household's UserAPI; the client logs in again by itself when the token expires."""
    token = account_secret(account, "streamiot_token_enc")
    if not token:
        token = streamiot.issue_token(email, password)
        remember_token(account, token)
        db.session.commit()
    api = streamiot.as_user(email, password, token=token, on_token=lambda t: remember_token(account, t))
    if not account.streamiot_user_id:
        user_id = api.profile().get("id")
        if user_id:
            account.streamiot_user_id = str(user_id)
            db.session.commit()
    return api


def _portal_thing(api, account: Account) -> tuple[str, str]:
    """(id, key) of the household's portal thing: looked up by its exact name before any
    create, so a create whose answer was lost is never repeated into a duplicate."""
    name = portal_thing_name(account.id)
    thing_id, key = account.portal_thing_id, None
    if thing_id:
        try:
            key = api.get_thing(thing_id).get("key")
        except (sie.NotFound, sie.ServerError):
            # Deleted, or unknown to the platform (its empty 500): look it up by name.
            thing_id = None
    if not thing_id:
        found = api.find_thing(name)
        if found:
            thing_id, key = found["id"], found.get("key")
        else:
            thing_id = api.create_thing(name)
        account.portal_thing_id = thing_id
        db.session.commit()
    if not key:
        key = api.get_thing(thing_id).get("key")
    if not isinstance(key, str) or not key:
        raise sie.ProtocolError("StreamIoT did not give the key of the household's portal thing")
    return thing_id, key


# --- closing a household ---------------------------------------------------------------------

def _close_gave_up(job, reason: str) -> None:
    log.warning("household %s could not be closed: %s (its gateways are still there; "
                "requeue the job once they are removed)", job.payload.get("account_id"), reason)


@handler(CLOSE_HOUSEHOLD, on_give_up=_close_gave_up)
def close_household(job, ctx) -> None:
    """The household's last member deleted their account (services/deletion.py), and its
    gateways were put through their removal: once those are done (their rows are deleted
    when nothing of them is left in StreamIoT), delete the portal thing, then the household
    with whatever rows are left (activity, jobs' household, key holders) by cascade."""
    account = _account(job)
    if account is None:
        return
    if db.session.scalar(sa.select(Membership.id).where(Membership.account_id == account.id).limit(1)):
        return  # someone is a member again: nothing to close
    if db.session.scalar(sa.select(Gateway.id).where(Gateway.account_id == account.id).limit(1)):
        raise RetryLater("waiting for the household's gateways to be removed", delay=deletion.CLOSE_CHECK_SECONDS)
    if account.portal_thing_id and account.streamiot_email and account.streamiot_password_enc:
        api = ctx.user_api(account)
        with contextlib.suppress(sie.NotFound):
            api.delete_thing(account.portal_thing_id)
    db.session.execute(sa.delete(Account).where(Account.id == account.id))
    db.session.commit()


# --- password-reset emails -------------------------------------------------------------------

def _forget_link(job, *_args) -> None:
    job.payload = password_reset.without_link(job.payload)


@handler(SEND_PASSWORD_RESET, on_give_up=_forget_link, streamiot=False)
def send_password_reset(job, ctx) -> None:
    """Email the link when the reset belongs to an account and is still open; retried like
    any job while the mail server does not take it. The link leaves the job's payload once
    sent (or given up)."""
    message = password_reset.email_for(job.payload)
    if message is not None and mail.send(message.to, message.subject, message.body) == mail.FAILED:
        raise RetryLater("The mail server did not take the email")
    _forget_link(job)

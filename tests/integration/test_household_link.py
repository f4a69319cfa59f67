"""A new household gets its StreamIoT user, login and portal thing from the worker, never
from the web request; its secrets are stored encrypted and never logged."""
import logging
import uuid

import requests
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.context import account_secret, seal_account_secret, set_streamiot
from portal.jobs.handlers.accounts import portal_thing_name
from portal.jobs.outbox import cancel, enqueue, enqueue_household_link
from portal.jobs.registry import handler
from portal.jobs.runner import drain, run_due_jobs
from portal.models import Account, Job
from portal.streamiot.client import StreamIoT
from portal.streamiot.deployment import client_from_config
from portal.streamiot.emulator import EMBEDDED_READER_URL, EMBEDDED_URL, EmbeddedAdapter, make_emulator

SEEN_BY_HANDLER: list = []


@handler("test.household_api")
def _use_household_api(job, ctx):
    account = db.session.get(Account, uuid.UUID(job.payload["account_id"]))
    SEEN_BY_HANDLER.append(ctx.user_api(account).find_thing(portal_thing_name(account.id)))


def household_user(app, account):
    """The household's StreamIoT login, as the portal stored it."""
    return client_from_config(app.config).as_user(
        account.streamiot_email, account_secret(account, "streamiot_password_enc")
    )


def link_jobs(account):
    return db.session.scalars(
        sa.select(Job).where(Job.kind == "link_household", Job.account_id == account.id)
    ).all()


def test_new_household_is_connecting_with_its_link_job_queued(app, make_household):
    _, account = make_household()
    assert account.link_state == "connecting"
    [job] = link_jobs(account)
    assert (job.state, job.target, job.payload) == ("queued", f"account:{account.id}", {"account_id": str(account.id)})


def test_worker_links_the_household_to_streamiot(app, make_household):
    _, account = make_household()
    drain(app)

    assert account.link_state == "connected"
    assert account.link_error is None and account.link_retry_at is None
    assert account.streamiot_email == f"account-{account.id}@iotlock.invalid"
    assert account.streamiot_user_id
    # The stored login works, and the household owns exactly one portal thing.
    user = household_user(app, account)
    [thing] = user.find_things(portal_thing_name(account.id))
    assert thing["id"] == account.portal_thing_id
    assert account_secret(account, "portal_thing_key_enc") == thing["key"]
    assert link_jobs(account)[0].state == "done"


def test_linking_again_changes_nothing_in_streamiot(app, make_household):
    _, account = make_household()
    drain(app)
    thing_id = account.portal_thing_id
    password = account_secret(account, "streamiot_password_enc")

    enqueue_household_link(account)  # the whole link once more, every step again
    db.session.commit()
    drain(app)

    assert account.link_state == "connected"
    assert account.portal_thing_id == thing_id
    assert account_secret(account, "streamiot_password_enc") == password
    assert len(household_user(app, account).find_things(portal_thing_name(account.id))) == 1


def test_relink_after_streamiot_lost_its_data_makes_everything_again(app, make_household, tmp_path):
    _, account = make_household()
    drain(app)
    old_thing = account.portal_thing_id

    # The same address now answers with an empty StreamIoT (its data was reset).
    session = requests.Session()
    session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(make_emulator(tmp_path / "reset.sqlite3")))
    fresh = StreamIoT(EMBEDDED_URL, EMBEDDED_READER_URL, session=session)
    set_streamiot(app, fresh)
    enqueue_household_link(account)
    db.session.commit()
    drain(app)

    assert account.link_state == "connected"
    assert account.portal_thing_id != old_thing
    user = fresh.as_user(account.streamiot_email, account_secret(account, "streamiot_password_enc"))
    [thing] = user.find_things(portal_thing_name(account.id))
    assert thing["id"] == account.portal_thing_id


def test_every_household_has_its_own_streamiot_user_and_thing(app, make_household):
    _, first = make_household("a@example.com", "Elm Street")
    _, second = make_household("b@example.com", "Oak Lane")
    drain(app)
    assert first.streamiot_email != second.streamiot_email
    assert first.portal_thing_id != second.portal_thing_id
    # A household's login does not see the other's thing.
    assert household_user(app, first).find_thing(portal_thing_name(second.id)) is None


def test_secrets_are_encrypted_at_rest_and_never_logged(app, make_household, caplog):
    caplog.set_level(logging.DEBUG)
    _, account = make_household()
    drain(app)

    secrets = {
        "streamiot_password_enc": account_secret(account, "streamiot_password_enc"),
        "streamiot_token_enc": account_secret(account, "streamiot_token_enc"),
        "portal_thing_key_enc": account_secret(account, "portal_thing_key_enc"),
    }
    row = db.session.execute(sa.select(Account.__table__).where(Account.id == account.id)).mappings().one()
    for column, plain in secrets.items():
        assert plain and len(plain) >= 16
        assert plain.encode() not in row[column]
        assert plain not in caplog.text
    assert len(secrets["streamiot_password_enc"]) >= 32  # a generated, strong password


def test_link_job_can_use_an_admin_login_where_self_registration_is_off(app, make_household, tmp_path):
    admin = ("admin@streamiot.example", "admin-password-1234")
    emulator = make_emulator(tmp_path / "closed-registration.sqlite3", self_register=False, admin=admin)
    session = requests.Session()
    session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(emulator))
    set_streamiot(app, StreamIoT(EMBEDDED_URL, EMBEDDED_READER_URL, session=session))

    _, account = make_household()
    run_due_jobs(app)
    assert account.link_state == "problem"  # self-registration refused

    app.config.update(STREAMIOT_ADMIN_EMAIL=admin[0], STREAMIOT_ADMIN_PASSWORD=admin[1])
    drain(app)
    assert account.link_state == "connected"


def test_no_web_request_writes_to_streamiot(app, client, auth, streamiot_writes):
    response = auth.register()
    assert response.status_code == 302
    client.get(response.headers["Location"])
    assert streamiot_writes == []

    drain(app)
    # The worker did the writes: the same counter sees them.
    assert any(w.endswith("/users") for w in streamiot_writes)
    assert any(w.endswith("/things") for w in streamiot_writes)


def test_handlers_get_the_households_login_and_a_renewed_token_is_kept(app, make_household):
    _, account = make_household()
    drain(app)
    # The stored token stopped working (expired, or the platform was reset).
    account.streamiot_token_enc = seal_account_secret(account, "streamiot_token_enc", "expired-token")
    enqueue("test.household_api", {"account_id": str(account.id)}, account_id=account.id, target="t:api")
    db.session.commit()
    SEEN_BY_HANDLER.clear()

    drain(app)
    assert SEEN_BY_HANDLER[0]["id"] == account.portal_thing_id
    renewed = account_secret(account, "streamiot_token_enc")
    assert renewed != "expired-token"
    # The renewed token works on its own (a wrong password shows no login happened).
    with_token_only = client_from_config(app.config).as_user(account.streamiot_email, "wrong", token=renewed)
    assert with_token_only.find_thing(portal_thing_name(account.id))


def test_handlers_wait_while_the_household_is_not_linked(app, make_household):
    _, account = make_household()
    [link] = link_jobs(account)
    cancel(link.id)  # the link never happened
    job = enqueue("test.household_api", {"account_id": str(account.id)}, account_id=account.id, target="t:api")
    db.session.commit()

    run_due_jobs(app)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.last_error == "waiting for the household's link to StreamIoT"

"""Replacing a gateway's keys (its StreamIoT thing): the job behind "Replace keys".

Steps, each done once and committed as soon as it is done (portal/services/gateway_keys.py
owns the state and the steps' record; no transaction is open while StreamIoT is asked):

  a. new_thing        create the replacement thing (found again by its per-replacement
                      name if an attempt was cut off after creating it), stored in the row
                      with its key (encrypted) before anything else happens;
  b. connect          connect it to the gateway's channel and every box channel;
  c. rekey_sent,      a sealed gateway is sent its new thing id and key (REKEY, sealed to
     rekey_confirmed  its key, with a counter and MAC), and its answer published by the new
                      thing is awaited. Seed gateways skip both (their owner loads new settings);
  d. switch           the gateway row names the new thing and key (old one kept aside);
  e. old_deleted      delete the old thing: the only revocation StreamIoT 0.13.0 knows.

The job shares the gateway's job target (deliveries.job_target), so it runs after every
change queued before it and before every change queued after it.
"""
import contextlib
import uuid

import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.registry import handler
from portal.models import Account, Gateway, Mailbox
from portal.services import device_link, gateway_keys
from portal.services.deliveries import DeviceState
from portal.services.gateway_keys import SEALED, SKIPPED, KeyState
from portal.streamiot import errors as sie
from portal.streamiot import messages


def _gateway(job) -> Gateway | None:
    return db.session.get(Gateway, uuid.UUID(str(job.payload["gateway_id"])))


def _retrying(job, reason, retry_at) -> None:
    gateway_keys.note_retry(uuid.UUID(str(job.payload["gateway_id"])), reason)


def _gave_up(job, reason) -> None:
    gateway_keys.replacement_failed(uuid.UUID(str(job.payload["gateway_id"])), reason)


def _box_channels(gateway: Gateway) -> list[str]:
    return [
        channel_id
        for channel_id in db.session.scalars(
            sa.select(Mailbox.channel_id).where(Mailbox.gateway_id == gateway.id, Mailbox.channel_id.is_not(None),
                                                Mailbox.status != DeviceState.REMOVING)
            .order_by(Mailbox.created_at, Mailbox.id)
        )
        if channel_id
    ]


# The gateway has this long, in all, to answer its new keys (it may be offline a while).
REKEY_ANSWER_WAITS = (1, 1, 2, 2, 5, 10, 20, 30, 60, 60, 60)


def _send_rekey(ctx, account: Account, gateway: Gateway) -> None:
    assert gateway.new_thing_id and gateway.thing_id and gateway.channel_id, "steps (a) and (b) ran"
    key = device_link.link_key(account, gateway, device_link.COMMAND)
    if key is None:
        raise PermanentFailure("The household has no link key for its sealed gateways.")
    sealed = messages.sealed_identity(gateway.public_key, gateway.new_thing_id, gateway_keys.new_thing_key(gateway))
    counter = gateway_keys.rekey_counter(gateway)  # committed: no transaction during the publish
    pack = messages.signed(messages.rekey(gateway.thing_id, sealed), gateway.channel_id, counter, key)
    ctx.streamiot.publish(gateway.channel_id, ctx.portal_thing_key(account), pack)


def _await_rekey_answer(ctx, job, account: Account, gateway: Gateway) -> None:
    """Done when the gateway's REKEY answer, published by the NEW thing, echoes the new thing
    id under a valid MAC; until then the job comes back (RetryLater)."""
    assert gateway.new_thing_id and gateway.thing_id and gateway.channel_id, "steps (a) and (b) ran"
    key = device_link.link_key(account, gateway, device_link.REPORT)
    page = ctx.streamiot.read_messages(gateway.channel_id, thing_key=ctx.portal_thing_key(account),
                                       publisher=gateway.new_thing_id, limit=200)
    packs: dict = {}
    for message in page["messages"]:
        packs.setdefault(message.get("time"), []).append(message)
    for items in packs.values():
        answer = [i for i in items if i.get("name") == f"{gateway.thing_id}_{messages.REKEY}"]
        if (answer and answer[0].get("unit") == messages.DONE
                and answer[0].get("string_value") == gateway.new_thing_id
                and key is not None and messages.verify(gateway.channel_id, items, key) is not None):
            return
        if answer and answer[0].get("unit") == messages.FAILED:
            raise PermanentFailure("The gateway could not open its new keys (is its key pair the one IoTLock "
                                   "knows?). Load new settings onto it by hand, or try again.")
    waits = REKEY_ANSWER_WAITS
    raise RetryLater("Waiting for the gateway to answer with its new keys (is it online?)",
                     delay=waits[min(max(job.attempts - 1, 0), len(waits) - 1)])


@handler(gateway_keys.JOB_REPLACE_KEYS, on_give_up=_gave_up, on_retry=_retrying)
def replace_gateway_keys(job, ctx) -> None:
    gateway = _gateway(job)
    if gateway is None or gateway.key_state != KeyState.REPLACING:
        return
    if gateway.status == DeviceState.REMOVING:
        raise PermanentFailure("The gateway is being removed.")
    account = db.session.get(Account, gateway.account_id)
    if account is None:
        return
    api = ctx.user_api(account)
    progress = gateway.key_progress or {}

    # (a) the new thing, stored before it is connected to anything
    if not progress.get("switch") and not gateway.new_thing_id:
        name = gateway_keys.new_thing_name(gateway)
        metadata = {"iotlock": "gateway", "gateway_id": str(gateway.id), "account_id": str(account.id)}
        found = api.find_thing(name)
        thing_id = found["id"] if found else api.create_thing(name, metadata=metadata)
        key = api.get_thing(thing_id)["key"]
        gateway_keys.keep_new_thing(gateway, thing_id, key)
        progress = gateway.key_progress

    # (b) the new thing reaches the gateway's channel and every box channel
    if not progress.get("switch") and not progress.get("connect"):
        assert gateway.new_thing_id and gateway.channel_id, "step (a) stored the new thing"
        for channel_id in [gateway.channel_id, *_box_channels(gateway)]:
            with contextlib.suppress(sie.Conflict):  # already connected: a retried step
                api.connect([channel_id], [gateway.new_thing_id])
        gateway_keys.step_done(gateway, "connect")
        progress = gateway.key_progress

    # (c) a sealed gateway is sent its new thing id and key, sealed to its key and
    # authenticated, and answers through the new thing; a seed gateway skips both.
    sealed = gateway_keys.protocol_level(gateway) == SEALED
    if not progress.get("rekey_sent"):
        if sealed:
            _send_rekey(ctx, account, gateway)
            gateway_keys.step_done(gateway, "rekey_sent")
        else:
            gateway_keys.step_done(gateway, "rekey_sent", SKIPPED)
        progress = gateway.key_progress
    if not progress.get("rekey_confirmed"):
        if sealed:
            _await_rekey_answer(ctx, job, account, gateway)
            gateway_keys.step_done(gateway, "rekey_confirmed")
        else:
            gateway_keys.step_done(gateway, "rekey_confirmed", SKIPPED)
    progress = gateway.key_progress

    # (d) the row names the new thing (the virtual gateway follows: its fingerprint changed)
    if not progress.get("switch"):
        if not gateway_keys.switch_to_new_thing(gateway):
            return  # another worker switched it
        db.session.expire_all()
        gateway = _gateway(job)
        if gateway is None:
            return

    # (e) the old key dies with its thing
    if gateway.old_thing_id:
        with contextlib.suppress(sie.NotFound):  # deleted already: a retried step
            api.delete_thing(gateway.old_thing_id)
    gateway_keys.finish_replacement(gateway)

"""What the API says about each object: plain dicts in the shape of portal/api/schemas.py,
built from what the services give the pages (their states in the pages' words)."""
from datetime import datetime

from portal.models import Account, ActivityEvent, Command, Gateway, Invite, Mailbox, Membership, WebhookEndpoint
from portal.services import deliveries
from portal.services.dashboard import BoxFacts, GatewayCard, PinRow
from portal.services.deliveries import Shown
from portal.services.members import NewInvite
from portal.services.webhooks import LogEntry

REMOVED = {"state": "removed", "label": "Removed", "reason": None, "final": True}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def state(shown: Shown) -> dict:
    return {"state": shown.key, "label": shown.label, "reason": shown.reason, "final": not shown.live}


def household(account: Account, membership: Membership, member_count: int) -> dict:
    return {"id": account.id, "name": account.name, "time_zone": account.time_zone, "role": membership.role,
            "members": member_count}


def member(membership: Membership) -> dict:
    return {"id": membership.id, "email": membership.user.email, "role": membership.role,
            "joined_at": membership.joined_at}


def open_invite(row: Invite) -> dict:
    return {"id": row.id, "email": row.email, "created_at": row.created_at, "expires_at": row.expires_at}


def invite(made: NewInvite) -> dict:
    return {"id": made.invite.id, "email": made.invite.email, "expires_at": made.invite.expires_at,
            "link": made.link, "email_sent": made.delivery == "sent"}


def box(mailbox: Mailbox | BoxFacts, shown: Shown) -> dict:
    return {"id": mailbox.id, "gateway_id": mailbox.gateway_id, "name": mailbox.name, "kind": mailbox.kind,
            "created_at": mailbox.created_at, "state": state(shown), "is_open": mailbox.is_open,
            "battery_percent": mailbox.battery_percent, "parcel_since": mailbox.parcel_since,
            "locked_until": mailbox.locked_until}


def gateway(card: GatewayCard) -> dict:
    g: Gateway = card.gateway
    return {"id": g.id, "name": g.name, "protocol": g.protocol, "public_key": g.public_key,
            "created_at": g.created_at, "last_heartbeat_at": g.last_heartbeat_at, "state": state(card.shown),
            "boxes": [{"id": row.mailbox.id, "name": row.mailbox.name, "kind": row.mailbox.kind,
                       "state": state(row.shown)} for row in card.mailboxes]}


def pin(row: PinRow) -> dict:
    p = row.pin
    return {"id": p.id, "box_id": p.mailbox_id, "group_id": p.group_id, "label": p.label, "purpose": p.purpose,
            "rules": row.words, "rule_state": row.rule_state, "assigned_to": p.assigned_to_id,
            "created_at": p.created_at, "state": state(row.shown)}


def unlock(command: Command) -> dict:
    return {"id": command.id, "box_id": command.mailbox_id, "created_at": command.created_at,
            "expires_at": command.expires_at, "state": state(deliveries.unlock_shown(command))}


def event(e: ActivityEvent) -> dict:
    return {"id": e.id, "kind": e.kind, "summary": e.summary, "actor": e.actor_label, "actor_kind": e.actor_kind,
            "box_id": e.mailbox_id, "gateway_id": e.gateway_id, "occurred_at": e.occurred_at,
            "recorded_at": e.recorded_at}


def webhook(endpoint: WebhookEndpoint) -> dict:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description or "",
            "kinds": list(endpoint.kinds or []), "enabled": endpoint.enabled, "created_at": endpoint.created_at}


def webhook_delivery(entry: LogEntry) -> dict:
    d = entry.delivery
    return {"id": d.id, "message_id": d.message_id, "event_type": d.event_type, "state": d.state,
            "created_at": d.created_at,
            "attempts": [{"at": a.at, "status_code": a.status_code, "result": a.result} for a in entry.attempts]}


def alert_preferences(rows: list, box_id, own_choices: bool) -> dict:
    return {"box_id": box_id, "own_choices": own_choices,
            "choices": {r.kind: [c for c, on in r.channels.items() if on] for r in rows},
            "kinds": [{"kind": r.kind, "words": r.words, "locked": r.locked,
                       "channels": [c for c, on in r.channels.items() if on]} for r in rows]}


def quiet_hours(membership: Membership, account: Account) -> dict:
    return {"quiet_from": membership.quiet_from, "quiet_until": membership.quiet_until,
            "time_zone": account.time_zone}

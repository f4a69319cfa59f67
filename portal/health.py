"""/healthz for load balancers and process supervisors: 200 when the database answers and
a worker beat recently, 503 naming the part that failed otherwise. No login, no cookie, no
ORM objects: one aggregate statement."""
import logging

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import db
from portal.services import worker_health

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.route("/healthz")
def healthz():
    body: dict = {"status": "ok", "database": "ok", "worker": "ok"}
    try:
        workers = worker_health.health()
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("healthz: the worker heartbeats could not be read", exc_info=True)
        body.update(status="fail", worker="unknown", database=_database_answers())
        if body["database"] == "ok":
            body["detail"] = "worker_heartbeats can't be read: are the migrations applied?"
        return jsonify(body), 503
    body["workers"] = workers.alive
    body["worker_last_beat_seconds"] = (
        round(workers.last_beat_age, 1) if workers.last_beat_age is not None else None
    )
    if not workers.alive:
        body.update(status="fail", worker="stale" if workers.last_beat_age is not None else "none")
        body["worker_stale_after_seconds"] = current_app.config["WORKER_STALE_SECONDS"]
        return jsonify(body), 503
    return jsonify(body)


def _database_answers() -> str:
    """ "ok" when the database answers a trivial statement (the heartbeat table is what
    failed: migrations not applied?), "unreachable" otherwise."""
    try:
        db.session.execute(sa.text("SELECT 1"))
        db.session.rollback()
    except SQLAlchemyError:
        db.session.rollback()
        return "unreachable"
    return "ok"

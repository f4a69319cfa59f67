"""The same Idempotency-Key sent several times at once (a client retrying on a timeout while
the first request is still running): one PIN and one delivery job, every answer either the
first answer or 409 "still being answered". Each request is its own thread and session."""
import threading

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Command, Pin

PARALLEL = 6


def test_parallel_requests_with_one_key_make_one_pin(app, world):
    body = {"box_ids": [world.id_of("mailbox")], "label": "Racer", "digits": "5927"}
    headers = {"Authorization": f"Bearer {world.a['api_secret']}", "Idempotency-Key": "race-1"}
    start = threading.Barrier(PARALLEL)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def send():
        client = app.test_client()
        start.wait(timeout=10)
        response = client.post("/api/v1/pins", json=body, headers=headers)
        with lock:
            answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=send) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == PARALLEL
    statuses = sorted(status for status, _body in answers)
    assert set(statuses) <= {201, 409}, answers
    made = [answer for status, answer in answers if status == 201]
    assert made and all(answer == made[0] for answer in made)
    db.session.expire_all()
    pins = [str(pin_id) for pin_id in db.session.scalars(sa.select(Pin.id).where(Pin.label == "Racer"))]
    assert pins == [made[0]["items"][0]["id"]]
    auths = db.session.scalars(sa.select(Command).where(Command.action == "AUTH",
                                                        Command.mailbox_id == world.a["mailbox"].id)).all()
    assert len(auths) == 1 and auths[0].job_id is not None

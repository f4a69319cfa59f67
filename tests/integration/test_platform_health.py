"""StreamIoT's health, shared by the workers (portal/jobs/platform.py): one outage is found by
one attempt, one worker probes at a time, held jobs keep their attempts and are all due the
moment StreamIoT answers, and the pages say why changes wait and when the next try is."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs import platform
from portal.jobs.outbox import enqueue
from portal.jobs.registry import handler
from portal.jobs.runner import run_due_jobs
from portal.models import STREAMIOT, Command, Job, PlatformHealth, utcnow
from portal.services import deliveries, support
from portal.streamiot import errors as sie
from tests.plugins.text import visible_text

RUNS: list[tuple[int, int]] = []  # (job id, attempt)
OUT_OF_REACH = "StreamIoT could not be reached (POST /http/channels/c1/messages)"


class StreamIoTSwitch:
    down = False


@handler("test.platform.publish")
def _publish(job, ctx):
    RUNS.append((job.id, job.attempts))
    if StreamIoTSwitch.down:
        raise sie.Unavailable(OUT_OF_REACH, operation="POST /http/channels/c1/messages")


@handler("test.platform.local", streamiot=False)
def _local(job, ctx):
    RUNS.append((job.id, job.attempts))


@pytest.fixture(autouse=True)
def _fresh(app):
    RUNS.clear()
    StreamIoTSwitch.down = False
    app.config.update(PLATFORM_PROBE_BASE=0.5, PLATFORM_PROBE_CAP=5.0)
    yield


@pytest.fixture
def frozen(time_machine):
    now = utcnow().replace(microsecond=0)
    time_machine.move_to(now, tick=False)
    return now


def add(kind="test.platform.publish", target="gateway:1") -> Job:
    job = enqueue(kind, {}, account_id=None, target=target)
    db.session.commit()
    return job


def health() -> PlatformHealth:
    db.session.expire_all()
    row = db.session.get(PlatformHealth, STREAMIOT)
    assert row is not None
    return row


def attempts(*jobs) -> list[int]:
    db.session.expire_all()
    return [db.session.get(Job, job.id).attempts for job in jobs]


def runs_since(n: int) -> list[int]:
    return [job_id for job_id, _ in RUNS[n:]]


# --- the row's transitions ------------------------------------------------------------------

def test_only_the_attempt_that_finds_it_up_takes_it_down_and_answered_takes_it_up(app, frozen):
    first = platform.unreachable("w1", OUT_OF_REACH, frozen, probing=False, config=app.config)
    second = platform.unreachable("w2", OUT_OF_REACH, frozen, probing=False, config=app.config)
    assert first == (frozen + timedelta(seconds=0.5), True)
    assert second == (frozen + timedelta(seconds=0.5), False)  # already down: nothing moved
    row = health()
    assert (row.state, row.down_since, row.probes, row.reason) == ("down", frozen, 0, OUT_OF_REACH)

    assert platform.answered(frozen + timedelta(seconds=1)) is True
    assert platform.answered(frozen + timedelta(seconds=1)) is False
    row = health()
    assert (row.state, row.next_probe_at, row.up_since) == ("up", None, frozen + timedelta(seconds=1))


def test_two_workers_never_probe_at_once_and_a_dead_probers_right_is_taken_over(app, frozen):
    platform.unreachable("w0", OUT_OF_REACH, frozen, probing=False, config=app.config)
    lease = 60.0

    def gate(worker, at):
        with db.engine.connect() as conn:
            mode = platform.gate(conn, worker, at, lease).mode
            conn.commit()
        return mode

    assert gate("w1", frozen) == gate("w2", frozen) == platform.CLOSED  # the probe is not due yet
    due = frozen + timedelta(seconds=0.5)
    assert [gate("w1", due), gate("w2", due), gate("w1", due)] == [platform.PROBE, platform.CLOSED, platform.CLOSED]
    assert (health().probe_by, health().probes) == ("w1", 1)
    # w1 dies mid-probe: once its lease ran out, one other worker probes instead.
    after = due + timedelta(seconds=lease + 1)
    assert [gate("w2", after), gate("w3", after)] == [platform.PROBE, platform.CLOSED]
    assert (health().probe_by, health().probes) == ("w2", 2)


def test_failed_probes_wait_half_a_second_then_double_up_to_five(app, frozen):
    platform.unreachable("w0", OUT_OF_REACH, frozen, probing=False, config=app.config)
    waits, now = [], frozen
    for _ in range(6):
        now = health().next_probe_at
        with db.engine.connect() as conn:
            assert platform.gate(conn, "prober", now, 60).mode == platform.PROBE
            conn.commit()
        next_probe, counted = platform.unreachable("prober", OUT_OF_REACH, now, probing=True, config=app.config)
        assert counted is False
        waits.append((next_probe - now).total_seconds())
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]  # after the first 0.5 s
    assert health().probes == 6


# --- the runner ---------------------------------------------------------------------------

def test_held_jobs_keep_their_attempts_while_it_is_down(app, frozen):
    jobs = [add(target=f"gateway:{i}") for i in range(3)]
    local = add("test.platform.local", target="housekeeping")
    StreamIoTSwitch.down = True

    run_due_jobs(app)
    # The first attempt found it down; nobody else asked StreamIoT; the local job ran. (All
    # are due at the same instant, so which StreamIoT job went first is the database's pick.)
    ran = runs_since(0)
    assert len(ran) == 2 and local.id in ran
    [first] = [job_id for job_id in ran if job_id != local.id]
    counted = [1 if j.id == first else 0 for j in jobs]
    assert attempts(*jobs) == counted
    assert [db.session.get(Job, j.id).state for j in jobs] == ["queued"] * 3
    assert run_due_jobs(app) == 0  # nothing more before the probe time

    for wait in (0.5, 1, 2, 4, 5, 5, 5):
        frozen += timedelta(seconds=wait)
        before = len(RUNS)
        run_due_jobs(app, now=frozen)
        assert len(RUNS) - before == 1  # exactly one probe
    assert attempts(*jobs) == counted  # probes are not counted
    assert health().probes == 7
    # Each probe was another job's (a held job goes to the back of the due queue).
    assert set(runs_since(2)) == {j.id for j in jobs}


def test_every_held_job_is_due_at_once_when_it_answers(app, frozen):
    jobs = [add(target=f"gateway:{i % 3}") for i in range(9)]
    StreamIoTSwitch.down = True
    run_due_jobs(app)
    assert health().state == "down"

    StreamIoTSwitch.down = False
    before = len(RUNS)
    # One pass at the probe time: the probe answers, and every held job runs in it.
    assert run_due_jobs(app, now=frozen + timedelta(seconds=0.5)) == 9
    assert health().state == "up"
    assert {db.session.get(Job, j.id).state for j in jobs} == {"done"}
    done = runs_since(before)
    for target in range(3):  # same-target order kept
        ours = [j.id for j in jobs if j.target == f"gateway:{target}"]
        assert [job_id for job_id in done if job_id in ours] == ours
    assert attempts(*jobs)[0] == 2 and set(attempts(*jobs)[1:]) == {1}


def test_a_job_that_ends_without_news_hands_the_probe_on(app, frozen):
    platform.unreachable("w0", OUT_OF_REACH, frozen, probing=False, config=app.config)
    add(target="gateway:1")
    due = frozen + timedelta(seconds=0.5)
    with db.engine.connect() as conn:
        assert platform.gate(conn, "w1", due, 60).mode == platform.PROBE
        platform.release_probe(conn, "w1", sent=False)
        conn.commit()
    assert (health().probe_by, health().probes, health().state) == (None, 0, "down")
    with db.engine.connect() as conn:
        assert platform.gate(conn, "w2", due, 60).mode == platform.PROBE


# --- what the pages say ---------------------------------------------------------------------

def test_platform_waiting_counts_down_from_the_stored_probe_time(app, frozen, time_machine):
    assert deliveries.platform_waiting(frozen) is None
    platform.unreachable("w0", OUT_OF_REACH, frozen, probing=False, config=app.config)
    db.session.execute(sa.update(PlatformHealth).values(next_probe_at=frozen + timedelta(seconds=4)))
    db.session.commit()
    assert deliveries.platform_waiting(frozen) == "The device service can't be reached; trying again in 4 s"
    assert deliveries.platform_waiting(frozen, staff=True) == "StreamIoT can't be reached; trying again in 4 s"
    assert deliveries.platform_waiting(frozen + timedelta(seconds=3.5)).endswith("trying again in 1 s")
    assert deliveries.platform_waiting(frozen + timedelta(seconds=5)).endswith("trying again now")


def test_queued_changes_say_why_they_wait_on_the_households_pages_and_in_the_console(
    app, kit, member_client, frozen, staff
):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    platform.unreachable("w0", OUT_OF_REACH, frozen, probing=False, config=app.config)
    db.session.execute(sa.update(PlatformHealth).values(next_probe_at=frozen + timedelta(seconds=4)))
    db.session.commit()
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    later = kit.add_gateway("Garage", run=False)

    words = "The device service can&#39;t be reached; trying again in 4 s"
    box_page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    pin_list = box_page.split('id="pins"', 1)[1].split('id="add-pin"', 1)[0]
    assert words in pin_list
    for jargon in ("StreamIoT", "thing", "channel", "AUTH"):
        assert jargon not in pin_list
    # A gateway still being set up says the same.
    assert words in member_client.get(f"/gateways/{later.id}").get_data(as_text=True)

    staff_user, _secret = staff.sign_in()
    view = support.household_view(staff_user, kit.account.id)
    assert view.platform_waiting == "StreamIoT can't be reached; trying again in 4 s"
    [pin_row] = [row for gv in view.gateways for mv in gv.mailboxes for row in mv.pins]
    assert pin_row.shown.reason == "StreamIoT can't be reached; trying again in 4 s"


def test_a_change_whose_attempt_failed_while_the_platform_is_up_says_when_it_is_tried_again(
    app, kit, member_client, frozen
):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    pin = kit.add_pin(mailbox, "Grandma", "4821", run=False)
    command = kit.reload(pin).command_id
    job_id = db.session.get(Command, command).job_id
    deliveries.note_retry(command, job_id, "StreamIoT answered POST /http/channels/x/messages with 429",
                          frozen + timedelta(seconds=8))
    db.session.commit()
    box_page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    pin_list = box_page.split('id="pins"', 1)[1].split('id="add-pin"', 1)[0]
    assert "Not delivered yet; trying again in 8 s" in pin_list
    assert "StreamIoT" not in pin_list and "429" not in visible_text(pin_list)  # ids may hold "429"
    # Support keeps the platform's own words.
    assert "429" in db.session.get(Command, command).reason

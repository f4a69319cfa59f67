"""The worker loop: job passes and periodic tasks until told to stop; nothing kills it."""
import logging
import threading
import time

from portal.jobs import platform
from portal.jobs.outbox import wakeup
from portal.jobs.runner import PeriodicSchedule, new_worker_id, next_job_due_in, run_due_jobs
from portal.services import worker_health

log = logging.getLogger("portal.jobs")

# Jobs per pass before the loop looks at periodic tasks and the stop flag again.
BATCH = 50
MAX_FAILURE_WAIT = 30.0


class Worker:
    def __init__(self, app, worker_id: str | None = None):
        self.app = app
        self.worker_id = worker_id or new_worker_id()
        self.schedule = PeriodicSchedule()
        self._last_beat: float | None = None

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set. Every failure is logged and the loop goes on."""
        log.info("worker %s started", self.worker_id)
        failures = 0
        while not stop.is_set():
            self._beat()
            ran = 0
            wait = self._poll_seconds()
            try:
                ran = run_due_jobs(self.app, limit=BATCH, worker_id=self.worker_id, stop=stop)
                failures = 0
            except Exception:  # noqa: BLE001  (database away, a broken handler module, ...)
                failures += 1
                # Back off while the trouble lasts, so a dead database is not hammered.
                wait = min(wait * 2 ** min(failures, 5), MAX_FAILURE_WAIT)
                log.exception("job pass failed; trying again in %.1f s", wait)
            try:
                wait = min(wait, self.schedule.run_due(self.app, stop))
            except Exception:  # noqa: BLE001
                log.exception("periodic tasks failed")
            if stop.is_set():
                break
            if ran >= BATCH:
                continue  # more may be waiting
            try:
                due_in = next_job_due_in(self.app)
            except Exception:  # noqa: BLE001
                due_in = None
            if due_in is not None and due_in > 0:
                # A retry due sooner than the next poll (e.g. Retry-After: 0.5).
                wait = min(wait, due_in)
            try:
                with self.app.app_context():
                    probe_in = platform.next_probe_in()
            except Exception:  # noqa: BLE001
                probe_in = None
            if probe_in is not None:
                # StreamIoT is down: be there when its next probe may go.
                wait = min(wait, probe_in)
            wakeup.wait(max(wait, 0.05))
            wakeup.clear()
        try:
            with self.app.app_context():
                worker_health.forget(self.worker_id)
        except Exception:  # noqa: BLE001  (its row then ages out)
            log.exception("could not remove the heartbeat of worker %s", self.worker_id)
        log.info("worker %s stopped", self.worker_id)

    def _beat(self) -> None:
        """Say this worker is alive, every WORKER_BEAT_SECONDS (for /healthz)."""
        now = time.monotonic()
        every = float(self.app.config.get("WORKER_BEAT_SECONDS", 5.0))
        if self._last_beat is not None and now - self._last_beat < every:
            return
        try:
            with self.app.app_context():
                worker_health.beat(self.worker_id, starting=self._last_beat is None)
            self._last_beat = now
        except Exception:  # noqa: BLE001  (the database is away: /healthz says so by itself)
            log.exception("worker heartbeat failed")

    def _poll_seconds(self) -> float:
        return float(self.app.config.get("JOB_POLL_SECONDS", 1.0))


def start_in_background(app):
    """Start the worker in a daemon thread (its own app contexts and sessions); return a
    callable that stops it, letting the job in hand finish first."""
    stop_event = threading.Event()
    worker = Worker(app)
    thread = threading.Thread(target=worker.run, args=(stop_event,), name="iotlock-worker", daemon=True)
    thread.start()

    def stop(timeout: float = 15.0) -> None:
        stop_event.set()
        wakeup.set()
        thread.join(timeout)

    return stop

"""Which function runs each job kind, and which tasks the worker repeats on a timer.

Handler modules register themselves when imported; create_app() imports them all
(portal.jobs.handlers), so every app, web or worker, knows every job kind.
"""
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Handler:
    kind: str
    fn: Callable
    # on_give_up(job, reason): the job failed for good; the domain records it.
    on_give_up: Callable | None = None
    # on_retry(job, reason, retry_at): an attempt failed and another is planned.
    on_retry: Callable | None = None
    # Talks to StreamIoT: held while the platform is down (portal/jobs/platform.py).
    streamiot: bool = True


@dataclass(frozen=True)
class Periodic:
    name: str
    fn: Callable
    # Seconds, or the name of a config key holding them (read when the worker runs).
    every: float | str

    def interval(self, config) -> float | None:
        """Seconds between runs; None when this app has the task off (its key unset or 0)."""
        value = config.get(self.every) if isinstance(self.every, str) else self.every
        if value is None or value is False or float(value) <= 0:
            return None
        return float(value)


_handlers: dict[str, Handler] = {}
_periodic: dict[str, Periodic] = {}


def _same_function(a: Callable, b: Callable) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def handler(kind: str, on_give_up: Callable | None = None, on_retry: Callable | None = None, *,
            streamiot: bool = True):
    """Register `fn(job, ctx)` as the handler of `kind`; `streamiot=False` for one that never
    talks to StreamIoT (it keeps running while the platform is down)."""

    def register(fn: Callable) -> Callable:
        existing = _handlers.get(kind)
        if existing is not None and not _same_function(existing.fn, fn):
            raise ValueError(f"job kind {kind!r} already has a handler: {existing.fn.__qualname__}")
        _handlers[kind] = Handler(kind, fn, on_give_up, on_retry, streamiot)
        return fn

    return register


def periodic(seconds: float | str):
    """Register `fn(app)` to run every `seconds` in the worker. A str names a config key
    holding the seconds; an app where that key is unset or 0 does not run the task."""

    def register(fn: Callable) -> Callable:
        name = f"{fn.__module__}.{fn.__qualname__}"
        _periodic[name] = Periodic(name, fn, seconds)
        return fn

    return register


def get_handler(kind: str) -> Handler | None:
    return _handlers.get(kind)


def streamiot_kinds() -> tuple[str, ...]:
    """The job kinds whose handlers talk to StreamIoT."""
    return tuple(sorted(kind for kind, registered in _handlers.items() if registered.streamiot))


def periodic_tasks() -> list[Periodic]:
    return list(_periodic.values())


# The stop flag of the worker running the current periodic task (None: nobody can stop it).
_stop_flag: ContextVar[threading.Event | None] = ContextVar("iotlock_stop_flag", default=None)


@contextmanager
def stoppable(stop: threading.Event | None) -> Iterator[None]:
    """Run a periodic task under the worker's stop flag (see stop_requested)."""
    token = _stop_flag.set(stop)
    try:
        yield
    finally:
        _stop_flag.reset(token)


def stop_requested() -> bool:
    """A periodic task that walks many items checks this between them: the worker was asked
    to stop, so the rest waits for the next run (of this worker or another)."""
    stop = _stop_flag.get()
    return stop is not None and stop.is_set()

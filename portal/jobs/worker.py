"""The worker loop (filled in by the job-runner work)."""


def start_in_background(app):
    """Start the worker in a daemon thread; return a callable that stops it."""
    return lambda: None

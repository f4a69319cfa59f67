"""The outbox job runner: enqueue in the caller's transaction, claim, run, retry.

Services call `portal.jobs.outbox.enqueue(...)` next to the change that needs device work
and commit both together; a worker (`flask --app wsgi worker`, or the thread inside
`flask serve`) claims due jobs (`runner.py`), runs the handler of their kind
(`handlers/`) outside any database lock, and retries with capped exponential backoff and
full jitter until done or given up.

This package's __init__ imports nothing: services import the leaf `outbox` module, and
the handlers import services, so importing the runner from here would make a cycle.
"""

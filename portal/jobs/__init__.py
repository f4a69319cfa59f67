"""The outbox job runner: enqueue in the caller's transaction, claim, run, retry."""

"""Helpers for tests that run a server in a subprocess."""
import os
import subprocess


def stop(process: subprocess.Popen) -> None:
    """End a server the test started: politely, then for good after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_env(app, instance_dir, **settings) -> dict:
    """The environment of a `flask --app wsgi worker` process on the test app's database and
    secrets (virtual gateways off; `settings` add or replace variables)."""
    return dict(
        os.environ,
        IOTLOCK_ENV="development",
        IOTLOCK_INSTANCE_DIR=str(instance_dir),
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY=app.config["SECRET_KEY"],
        IOTLOCK_DATA_KEY=app.config["IOTLOCK_DATA_KEY"],
        VIRTUAL_GATEWAYS="off",
        PYTHONUNBUFFERED="1",
        **settings,
    )

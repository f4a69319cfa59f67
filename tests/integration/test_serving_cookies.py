"""Cookies in production: Secure by default; an explicit SESSION_COOKIE_SECURE=off (or
REMEMBER_COOKIE_SECURE=off) is honoured, with a warning at every start."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ProductionConfig
from portal import create_app
from portal.crypto import generate_data_key
from portal.extensions import db

ROOT = Path(__file__).resolve().parents[2]


def _production_settings(env: dict) -> dict:
    """ProductionConfig's cookie and argon2 settings as a fresh interpreter reads them from `env`."""
    code = ("import json, config; c = config.ProductionConfig; print(json.dumps({n: getattr(c, n) for n in "
            "('SESSION_COOKIE_SECURE', 'REMEMBER_COOKIE_SECURE', 'ARGON2_MEMORY_COST', 'ARGON2_TIME_COST', "
            "'ARGON2_PARALLELISM')}))")
    clean = {k: v for k, v in os.environ.items() if "COOKIE" not in k and not k.startswith("ARGON2")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def test_production_cookies_are_secure_unless_the_environment_says_off():
    assert _production_settings({})["SESSION_COOKIE_SECURE"] is True
    assert _production_settings({})["REMEMBER_COOKIE_SECURE"] is True
    off = _production_settings({"SESSION_COOKIE_SECURE": "off"})
    assert off["SESSION_COOKIE_SECURE"] is False and off["REMEMBER_COOKIE_SECURE"] is False
    assert _production_settings({"SESSION_COOKIE_SECURE": "off", "REMEMBER_COOKIE_SECURE": "on"})[
        "REMEMBER_COOKIE_SECURE"] is True


def test_production_argon2_meets_the_owasp_minimum_with_one_lane():
    cost = _production_settings({})
    # OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 (or stronger).
    assert cost["ARGON2_MEMORY_COST"] >= 19456 and cost["ARGON2_TIME_COST"] >= 2
    assert cost["ARGON2_PARALLELISM"] == 1


def _production_app(tmp_path, **overrides):
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
                     SECRET_KEY="k" * 32, IOTLOCK_DATA_KEY=generate_data_key(), INSTANCE_DIR=tmp_path, **overrides)
    with app.app_context():
        db.create_all()
    return app


@pytest.mark.parametrize("secure", [True, False])
def test_the_session_cookie_follows_the_setting_and_off_is_warned_about(tmp_path, caplog, secure):
    with caplog.at_level(logging.WARNING, logger="portal"):
        app = _production_app(tmp_path, SESSION_COOKIE_SECURE=secure, REMEMBER_COOKIE_SECURE=secure)
    cookie = app.test_client().get("/login").headers["Set-Cookie"]
    assert cookie.startswith("session=")
    assert ("; Secure" in cookie) is secure
    warned = [r.getMessage() for r in caplog.records if "COOKIE_SECURE is off in production" in r.getMessage()]
    assert len(warned) == (0 if secure else 2)

"""Configuration: production refuses to start without its secrets, development makes and
keeps its own, and the pinned htmx matches the local copy byte for byte."""
import base64
import hashlib
from pathlib import Path

import pytest

from config import BASE_DIR, Config, ProductionConfig
from portal import create_app


def test_production_refuses_to_start_without_secrets_and_names_them(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError) as excinfo:
        create_app(
            ProductionConfig,
            SECRET_KEY=None,
            IOTLOCK_DATA_KEY=None,
            INSTANCE_DIR=tmp_path,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}",
        )
    assert "SECRET_KEY" in str(excinfo.value)
    assert "IOTLOCK_DATA_KEY" in str(excinfo.value)


def test_production_names_only_the_missing_secret(tmp_path):
    with pytest.raises(RuntimeError) as excinfo:
        create_app(
            ProductionConfig,
            SECRET_KEY="set",
            IOTLOCK_DATA_KEY=None,
            INSTANCE_DIR=tmp_path,
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}",
        )
    assert "IOTLOCK_DATA_KEY" in str(excinfo.value)
    assert "SECRET_KEY," not in str(excinfo.value)


def test_development_generates_secrets_once_and_keeps_them(tmp_path):
    settings = dict(
        SECRET_KEY=None,
        IOTLOCK_DATA_KEY=None,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'd.sqlite3'}",
    )

    class Dev(Config):
        INSTANCE_DIR = tmp_path

    first = create_app(Dev, **settings)
    second = create_app(Dev, **settings)
    assert first.config["SECRET_KEY"] and first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["IOTLOCK_DATA_KEY"] == second.config["IOTLOCK_DATA_KEY"]
    assert len(base64.urlsafe_b64decode(first.config["IOTLOCK_DATA_KEY"])) == 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_htmx_sri_hash_matches_the_local_copy():
    local = Path(BASE_DIR, "static", "vendor", f"htmx-{Config.HTMX_VERSION}.min.js").read_bytes()
    digest = base64.b64encode(hashlib.sha384(local).digest()).decode()
    assert f"sha384-{digest}" == Config.HTMX_SRI


def test_cdn_mode_pins_version_and_integrity(tmp_path):
    class Cdn(Config):
        INSTANCE_DIR = tmp_path

    app = create_app(
        Cdn,
        HTMX_FROM_CDN=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'c.sqlite3'}",
    )
    with app.test_request_context("/"):
        tag = app.jinja_env.globals["htmx_script"]()
    assert f"htmx.org@{Config.HTMX_VERSION}/dist/htmx.min.js" in tag
    assert f'integrity="{Config.HTMX_SRI}"' in tag

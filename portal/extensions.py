"""Every Flask extension object lives here, created unbound; create_app() binds them."""
from flask import current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from portal.models.base import Base


class ServerSideLogins(LoginManager):
    """flask-login, which computes its session protection's identifier (a SHA-512 of the
    address and browser) on every request before it looks whether the protection is on.
    It is off here (the login sessions are rows on the server, revoked there: portal/auth.py),
    and the identifier was 2 % of a small page."""

    def _session_protection_failed(self) -> bool:
        if not current_app.config.get("SESSION_PROTECTION", self.session_protection):
            return False
        return super()._session_protection_failed()


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = ServerSideLogins()
csrf = CSRFProtect()


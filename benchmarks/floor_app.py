"""The bare stack: a minimal app on the stack the design card fixes (Flask, flask-login,
Flask-SQLAlchemy, Jinja), served by benchmarks/serving.py beside the hello-world and the
portal under the same gunicorn settings.

Every logged-in request of the portal does at least this: open Flask's signed session
cookie, let flask-login load the user by looking the login session up by its token's
SHA-256 in the database (one statement, through the request's SQLAlchemy session), and
answer. `/page` then renders a small template (the portal's logged-in trivial page is a
fragment of that size); `/poll` reads one more row, a version, and answers 304 when it
matches If-None-Match (the portal's unchanged poll reads its household's change count, one
narrow row, the same shape).
No CSRF, no security headers, no request ids, no household checks, and the stack's
defaults (flask-login's session protection off, as in the portal): what a page costs on
this stack before the product adds anything. The portal's own shortcuts (its cached cookie
serializer, say) are not here, so a page of the portal can come out level with it.

    prepare(DATABASE_URL); DATABASE_URL=... SECRET_KEY=... gunicorn 'benchmarks.floor_app:create_app()'
    then GET /login and /page
"""
import hashlib
import os

import sqlalchemy as sa
from flask import Flask, render_template, request, session
from flask_login import LoginManager, UserMixin, current_user
from flask_sqlalchemy import SQLAlchemy
from jinja2 import DictLoader

TOKEN = "floor-benchmark-token"
_PAGE = """<div class="link-state" id="link-state-{{ user.id }}" role="status">
  <p><span class="badge">Connected</span> <span class="muted small">Signed in as {{ user.name }}.</span></p>
</div>"""

db = SQLAlchemy()
logins = sa.Table(
    "floor_logins", sa.MetaData(),
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
)
_WHO = sa.select(logins.c.user_id, logins.c.name).where(logins.c.token_hash == sa.bindparam("token_hash"))
_VERSION = sa.select(logins.c.version).where(logins.c.user_id == sa.bindparam("user_id"))


class User(UserMixin):
    def __init__(self, user_id: int, name: str):
        self.id, self.name = user_id, name


def create_app(database_url: str | None = None, secret_key: str | None = None) -> Flask:
    """The app; gunicorn calls it as `benchmarks.floor_app:create_app()`, which reads
    DATABASE_URL and SECRET_KEY (one key for every worker, or each refuses the others' cookie)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key or os.environ["SECRET_KEY"],
                      SQLALCHEMY_DATABASE_URI=database_url or os.environ["DATABASE_URL"])
    app.jinja_loader = DictLoader({"page.html": _PAGE})  # type: ignore[assignment]
    db.init_app(app)
    login_manager = LoginManager(app)
    login_manager.session_protection = None  # as in the portal (server-side login sessions)

    @login_manager.user_loader
    def load_user(token: str):
        digest = hashlib.sha256(token.encode()).hexdigest()
        row = db.session.connection().execute(_WHO, {"token_hash": digest}).first()
        return User(*row) if row else None

    @app.get("/login")
    def login():
        session["_user_id"] = TOKEN
        return "signed in"

    @app.get("/page")
    def page():
        if not current_user.is_authenticated:
            return "", 401
        return render_template("page.html", user=current_user)

    @app.get("/poll")
    def poll():
        if not current_user.is_authenticated:
            return "", 401
        version = db.session.connection().execute(_VERSION, {"user_id": current_user.id}).scalar_one()
        etag = f'"{version}"'
        if request.headers.get("If-None-Match") == etag:
            return "", 304, {"ETag": etag}
        return render_template("page.html", user=current_user), 200, {"ETag": etag}

    return app


def prepare(database_url: str) -> None:
    """Make the table and its one login, before the servers start (not in each worker)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            logins.create(connection, checkfirst=True)
            connection.execute(sa.delete(logins))
            connection.execute(sa.insert(logins).values(token_hash=hashlib.sha256(TOKEN.encode()).hexdigest(),
                                                        user_id=1, name="Floor", version="v1"))
    finally:
        engine.dispose()


"""The IoTLock API, /api/v1 (issue 14): every household action of the portal as JSON,
for personal access tokens, described by an OpenAPI 3.1 document generated from this code
(/api/v1/openapi.json) and a reference page (/api/v1/docs).

Built on flask-smorest: one marshmallow schema per body both validates the request and is
the body the document shows, and every answer is declared per status code. See
docs/api.md for why, and for the contract (problems, idempotency, ETags, cursors, limits).
"""
from flask import Flask
from flask_smorest import Api, Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1",
               description="Everything a household does in the portal, as JSON.")

from portal.api import docs, routes  # noqa: E402,F401  (the operations register on bp)


class _Api(Api):
    def _register_error_handlers(self):
        """The portal answers errors itself: problem documents under /api, pages elsewhere
        (portal/__init__.py)."""


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "IoTLock API")
    app.config.setdefault("API_VERSION", "1.0.0")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = _Api(app, spec_kwargs=docs.spec_kwargs())
    docs.add_components(api.spec)
    api.register_blueprint(bp)
    app.register_blueprint(docs.page_bp)
    # A bearer token, never a cookie, authenticates the API: there is no CSRF to guard against.
    csrf = app.extensions["csrf"]
    csrf.exempt(bp)

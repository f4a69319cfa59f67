"""The IoTLock API, /api/v1 (issue 14): every household action of the portal as JSON,
for personal access tokens, described by an OpenAPI 3.1 document generated from this code
(/api/v1/openapi.json) and a reference page (/api/v1/docs).

Built on flask-smorest: one marshmallow schema per body both validates the request and is
the body the document shows, and every answer is declared per status code. See
docs/api.md for why, and for the contract (problems, idempotency, ETags, cursors, limits).
"""
import http
import threading
from typing import Any

from apispec import APISpec
from flask import Flask
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response

bp = Blueprint("api", __name__, url_prefix="/api/v1",
               description="Everything a household does in the portal, as JSON.")

from portal.api import docs, problems, routes  # noqa: E402,F401  (the operations register on bp)
from portal.api.schemas import ProblemSchema  # noqa: E402


class _Api(Api):
    """flask-smorest's Api, with the blueprint's operations written into the OpenAPI document
    the first time the document is read rather than when the app is made. Writing them costs
    about half of `create_app` (deep copies of every operation's schemas), which every worker
    and every test would pay for a document that few of them ever serve."""

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, *args, **kwargs):
        self._undocumented: list[tuple[Blueprint, str, list | None]] = []
        self._documenting = threading.Lock()
        self._spec: APISpec | None = None
        super().__init__(*args, **kwargs)

    @property
    def spec(self) -> Any:  # as Api's own attribute: None until init_app
        if self._undocumented and self._spec is not None:
            # A reader arriving meanwhile waits here, then finds nothing left to write.
            with self._documenting:
                for blp, name, parameters in self._undocumented:
                    blp.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
                    self._spec.tag({"name": name, "description": blp.description})
                self._undocumented = []
        return self._spec

    @spec.setter
    def spec(self, value):
        self._spec = value

    def register_blueprint(self, blp, *, parameters=None, **options):
        """Api.register_blueprint, with its documentation half left for `spec` to do."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def _register_error_handlers(self):
        """The portal answers errors itself: problem documents under /api, pages elsewhere
        (portal/__init__.py)."""

    def _register_responses(self):
        """The error answers flask-smorest documents on its own (422 for a body that does not
        fit its schema, "default") are problem documents, as they are sent."""
        for status in http.HTTPStatus:
            response: dict = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, problems.MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Any other error, as a problem document.", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, problems.MEDIA_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


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

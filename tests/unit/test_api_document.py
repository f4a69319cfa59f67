"""The OpenAPI document is written the first time it is read, not when the app is made, and
then describes every operation of the API, the same for readers that arrive at once."""
import threading

from config import TestConfig
from portal import create_app

NOT_OPERATIONS = {"/api/v1/openapi.json", "/api/v1/docs"}


def _app(tmp_path):
    return create_app(TestConfig, SECRET_KEY="x", INSTANCE_DIR=tmp_path,
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}")


def _api(app):
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"]


def test_a_new_app_has_its_routes_but_no_operations_in_the_document_yet(tmp_path):
    app = _app(tmp_path)
    assert any(rule.rule == "/api/v1/pins" for rule in app.url_map.iter_rules())
    assert _api(app)._spec.to_dict()["paths"] == {}


def test_the_document_describes_every_api_route_once_read(tmp_path):
    app = _app(tmp_path)
    document = app.test_client().get("/api/v1/openapi.json").json
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")} - NOT_OPERATIONS
    documented = {path.replace("{", "<").replace("}", ">") for path in document["paths"]}
    # Rule converters are written <uuid:id> in the map and {id} in the document.
    assert {_bare(route) for route in routes} == {_bare(path) for path in documented}
    assert len(routes) > 20
    assert [tag["name"] for tag in document["tags"]] == ["api"]


def test_readers_at_once_get_one_and_the_same_document(tmp_path):
    app = _app(tmp_path)
    api = _api(app)
    documents: list[dict] = []
    start = threading.Barrier(4)

    def read():
        start.wait()
        documents.append(api.spec.to_dict())

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(documents) == 4
    assert all(document == documents[0] for document in documents)
    assert len(documents[0]["paths"]) > 20


def _bare(path: str) -> str:
    """/x/<uuid:id>/y and /x/<id>/y alike."""
    return "/".join("<>" if part.startswith("<") else part for part in path.split("/"))

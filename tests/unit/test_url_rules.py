"""The portal's rules write their URL builders when a link to them is first built
(portal.LazyBuilderRule), and then build exactly what Werkzeug's own rules build."""
import uuid

from flask import url_for
from werkzeug.routing import Map, Rule

from config import TestConfig
from portal import create_app
from portal.urls import LazyBuilderRule

SAMPLES = {"UUIDConverter": uuid.UUID("6ea9d578-a19d-4d72-b4f4-1f41c814ccfe"), "IntegerConverter": 7,
           "PathConverter": "a/b c", "UnicodeString": "x y/é", "UnicodeConverter": "x y/é"}


def _app(tmp_path):
    return create_app(TestConfig, SECRET_KEY="x", INSTANCE_DIR=tmp_path,
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}")


def _values(rule) -> dict:
    return {name: SAMPLES.get(type(converter).__name__, "x y/é") for name, converter in rule._converters.items()}


def _name(builder) -> str:
    return builder.__func__.__name__


def test_a_new_app_has_written_no_builder_and_a_link_writes_its_rules_own(tmp_path):
    app = _app(tmp_path)
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 100 and all(isinstance(rule, LazyBuilderRule) for rule in rules)
    assert {_name(rule._build) for rule in rules} == {_name(rule._build_unknown) for rule in rules} == {"build_first"}

    with app.test_request_context():
        link = url_for("gateways.index")

    assert link == "/gateways/"
    [index] = [rule for rule in rules if rule.endpoint == "gateways.index"]
    # url_for builds with unknown values as the query: that builder alone was written.
    assert _name(index._build_unknown) != "build_first" and _name(index._build) == "build_first"
    assert sum(_name(rule._build_unknown) == "build_first" for rule in rules) == len(rules) - 1


def test_every_rule_builds_what_werkzeug_s_own_rule_builds(tmp_path):
    app = _app(tmp_path)
    lazy = app.url_map.bind("portal.example", url_scheme="https")
    plain_map = Map([Rule(rule.rule, **rule.get_empty_kwargs()) for rule in app.url_map.iter_rules()],
                    converters=app.url_map.converters)
    plain = plain_map.bind("portal.example", url_scheme="https")
    built = 0
    for rule in app.url_map.iter_rules():
        values = _values(rule)
        for extra in ({}, {"next": "/a b?c", "page": 2}):  # unknown values become the query
            for absolute in (False, True):
                for _twice in range(2):  # the first call writes the builder, the second uses it
                    assert lazy.build(rule.endpoint, {**values, **extra}, method=next(iter(rule.methods)),
                                      force_external=absolute) == \
                        plain.build(rule.endpoint, {**values, **extra}, method=next(iter(rule.methods)),
                                    force_external=absolute), rule.rule
                    built += 1
    assert built > 800

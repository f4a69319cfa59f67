"""Plain rows for the hot read paths: a statement built once (module level, with bound
parameters) executed through the session's connection. The session's ORM execution layer
costs as much as the query itself for a few columns; these rows are tuples, never objects."""
from collections import namedtuple
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from portal.extensions import db
from portal.models import Gateway, Mailbox
from portal.models.devices import GatewayNames, MailboxNames

T = TypeVar("T")


def among(column: sa.ColumnElement | orm.QueryableAttribute, values: tuple) -> sa.ColumnElement[bool]:
    """`column IN (values)` for a fixed tuple of values, with a bound parameter of its own for
    each: compiled once and cached with the statement. `column.in_(values)` makes one
    "expanding" parameter, whose SQL is rendered again at every execution (20-25 us of a
    statement on SQLite, for a hot statement that runs on every poll)."""
    return column.in_([sa.bindparam(None, value, type_=column.type) for value in values])


class unindexed(sa.ColumnElement):
    """`column`, for a filter no index may serve: SQLite's unary `+` (a no-op on the value),
    the column itself elsewhere. SQLite plans without statistics and takes an index on the
    household (a whole history of rows) over a lookup by id, or a box's changes in order;
    PostgreSQL, which keeps statistics, chooses well alone (docs/architecture.md)."""
    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement | orm.QueryableAttribute):
        self.column = sa.sql.coercions.expect(sa.sql.roles.ExpressionElementRole, column)
        self.type = self.column.type


@compiles(unindexed)
def _unindexed(element, compiler, **kw):
    return compiler.process(element.column, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    return f"+{compiler.process(element.column, **kw)}"


def read(statement: sa.Executable, params: dict | None = None) -> sa.CursorResult:
    """Execute `statement` in the request's transaction, after writing out what the session
    holds unsaved (as the session's own queries do), so the rows see the request's changes."""
    session = db.session()
    session.flush()
    return session.connection().execute(statement, params or {})


class json_rows(FunctionElement):
    """An aggregate: the rows of its group as one JSON array of arrays, each the values of
    `clauses` in order (no row: SQLite's [], PostgreSQL's NULL). A statement that reads one
    row can carry a short list beside it this way, instead of a statement of its own: the
    box page reads its household's members in its box's row (docs/performance.md, round 17).
    Values come back as JSON has them: ids and times as text."""
    type = sa.JSON()
    name = "json_rows"
    inherit_cache = True


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element, compiler, **kw):
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element, compiler, **kw):
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


def every_column(model) -> sa.Select:
    """SELECT every column of `model`'s table, as plain rows: read_as reads them."""
    return sa.select(*model.__table__.c)


def read_as(model: type[T], statement: sa.Executable, params: dict | None = None) -> list[T]:
    """The rows of `statement`, which selects every column of `model`'s table first
    (every_column), typed as `model`: each has the object's column attributes, for code that
    only reads them. They are not objects: not in the session, no relationships or
    properties, and setting an attribute raises. A box's live part reads its PINs, changes
    and events so: its page of PINs costs 0.14 ms this way, 0.22 ms through the ORM
    (docs/performance.md, round 15)."""
    return cast(list[T], read(statement, params).all())


class Record(Generic[T]):
    """A model's plain, read-only row type, for a statement that reads several models' rows
    at once (read_as types one model's): a named tuple of the model's columns, under their
    attribute names, with the words its `shared` mixins give (the model has them too, e.g.
    Mailbox.kind_label). `columns` are selected in that order; make() takes their values.
    A box page's box and gateway read so: 0.07 ms, against 0.13 ms as two ORM objects
    (docs/performance.md, round 16)."""

    def __init__(self, model: type[T], *shared: type):
        mapper = sa.inspect(model)
        self.columns = tuple(model.__table__.c)  # type: ignore[attr-defined]
        names = [mapper.get_property_by_column(column).key for column in self.columns]
        fields = namedtuple(f"{model.__name__}Fields", names)  # type: ignore[misc]
        record: Any = type(f"{model.__name__}Record", (*shared, fields), {"__slots__": ()})
        self._make = record._make

    def make(self, values: Sequence) -> T:
        return cast(T, self._make(values))


# The plain rows of a box and a gateway, for the pages and services that only read them.
BOX_ROW = Record(Mailbox, MailboxNames)
GATEWAY_ROW = Record(Gateway, GatewayNames)

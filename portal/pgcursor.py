"""The portal's psycopg cursor (PostgreSQL): a result's description is built when read.

psycopg builds `Cursor.description` anew on every access, one Column object per column
(0.7 us each). SQLAlchemy asks for it after every statement, but a statement it has
compiled before only needs to know whether rows came back: the rest it cached with the
statement. A box page's live part reads 167 columns a draw; building their Columns was
about 3 % of its CPU on PostgreSQL (docs/performance.md, round 16). Here `description` is
a sequence that builds the Columns the first time anything looks into it, as psycopg would
have, while the result it describes is still the cursor's.
"""
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from sqlalchemy import Engine, event

# psycopg's own: a list of Columns, or None.
_DESCRIBE: Callable[[psycopg.Cursor], list | None] = psycopg.Cursor.description.fget  # type: ignore[attr-defined]


class LazyDescription(Sequence):
    """The columns of `cursor`'s current result, built when first read."""

    __slots__ = ("_cursor", "_result", "_columns")

    def __init__(self, cursor: psycopg.Cursor, result: Any):
        self._cursor, self._result = cursor, result
        self._columns: list | None = None

    def _built(self) -> list:
        if self._columns is None:
            if self._cursor.pgresult is not self._result:
                raise RuntimeError("this description is of a result the cursor no longer holds")
            self._columns = _DESCRIBE(self._cursor) or []
        return self._columns

    def __len__(self) -> int:
        return self._result.nfields

    def __getitem__(self, index):
        return self._built()[index]

    def __iter__(self) -> Iterator:
        return iter(self._built())

    def __repr__(self) -> str:
        return repr(self._built())


class Cursor(psycopg.Cursor):
    """psycopg's client-side cursor, with a description built when read."""

    # A sequence of Columns where psycopg's is a list of them.
    @property
    def description(self):  # type: ignore[override]
        result = self.pgresult
        if result is not None and result.nfields and result.status == ExecStatus.TUPLES_OK:
            return LazyDescription(self, result)
        return _DESCRIBE(self)


def use_on(engine: Engine) -> None:
    """Every connection `engine` (psycopg) opens makes its client-side cursors as Cursor."""

    @event.listens_for(engine, "connect")
    def _cursor_factory(dbapi_connection, _record):
        dbapi_connection.cursor_factory = Cursor

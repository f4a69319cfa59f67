"""The one place that scopes queries to a household. Every service loads household data
through these helpers, so another household's ids behave exactly like unknown ids."""
import uuid

import sqlalchemy as sa

from portal.extensions import db
from portal.services.errors import NotFound


def scoped(model, account_id: uuid.UUID | sa.BindParameter[uuid.UUID]) -> sa.Select:
    """SELECT model WHERE model.account_id = account_id (a value, or a parameter of a
    statement built once)."""
    return sa.select(model).where(model.account_id == account_id)


def get_scoped(model, account_id: uuid.UUID, object_id, *options):
    """Load one row of this household, or raise NotFound (also for other households)."""
    if not isinstance(object_id, uuid.UUID):
        try:
            object_id = uuid.UUID(str(object_id))
        except ValueError:
            raise NotFound() from None
    stmt = scoped(model, account_id).where(model.id == object_id)
    if options:
        stmt = stmt.options(*options)
    row = db.session.scalars(stmt).first()
    if row is None:
        raise NotFound()
    return row

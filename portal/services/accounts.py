"""Registration, authentication and a user's own settings."""
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import ROLE_OWNER, Account, Membership, User, utcnow
from portal.services.errors import ValidationFailed


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalars(sa.select(User).where(User.email == normalize_email(email))).first()


def register(email: str, password: str, household_name: str) -> tuple[User, Account]:
    """Create the user, their household and the owner membership in one transaction."""
    email = normalize_email(email)
    if find_user_by_email(email) is not None:
        raise ValidationFailed("An account with this email already exists. Log in instead.", field="email")
    user = User(email=email, password_hash=crypto.hash_password(password), password_changed_at=utcnow())
    account = create_household(user, household_name)
    db.session.add(user)
    db.session.commit()
    return user, account


def create_household(owner: User, name: str) -> Account:
    """Add a household owned by `owner` to the session (the caller commits)."""
    account = Account(name=name.strip())
    db.session.add(account)
    db.session.add(Membership(account=account, user=owner, role=ROLE_OWNER))
    return account


def authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None (same answer for unknown email and wrong password)."""
    user = find_user_by_email(email)
    if user is None or user.is_disabled:
        crypto.verify_password(None, password)
        return None
    if not crypto.verify_password(user.password_hash, password):
        return None
    if crypto.password_needs_rehash(user.password_hash):
        user.password_hash = crypto.hash_password(password)
        db.session.commit()
    return user

"""All models, importable from one place: `from portal.models import Gateway`."""
from portal.models.accounts import (  # noqa: F401
    LINK_CONNECTED,
    LINK_CONNECTING,
    LINK_PROBLEM,
    ROLE_MEMBER,
    ROLE_OWNER,
    Account,
    Invite,
    LoginSession,
    LoginThrottle,
    Membership,
    PasswordReset,
    RecoveryCode,
    User,
)
from portal.models.activity import ActivityEvent  # noqa: F401
from portal.models.alerts import ALERT_KINDS, CHANNELS, TEST_KIND, Alert, AlertPreference, Notification  # noqa: F401
from portal.models.api import SCOPES, ApiToken, IdempotentRequest  # noqa: F401
from portal.models.base import Base, new_id, utcnow  # noqa: F401
from portal.models.changes import HouseholdChanges  # noqa: F401
from portal.models.devices import (  # noqa: F401
    PROTOCOL_SEALED,
    PROTOCOL_SEED,
    PROTOCOLS,
    ChannelCursor,
    Command,
    Gateway,
    GatewayKeyHolder,
    IdleRead,
    IgnoredDeviceMessage,
    Mailbox,
    Pin,
)
from portal.models.jobs import Job, WorkerHeartbeat  # noqa: F401
from portal.models.offers import KeyOffer  # noqa: F401
from portal.models.platform import PLATFORM_DOWN, PLATFORM_UP, STREAMIOT, PlatformHealth  # noqa: F401
from portal.models.push import PushSubscription  # noqa: F401
from portal.models.webhooks import (  # noqa: F401
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

"""Job handlers, one module per area; each owner adds ONE import line below.

Imported by create_app(): importing a handler module registers its job kinds and
periodic tasks (portal/jobs/registry.py).
"""
from portal.jobs import virtual_gateways  # noqa: F401  (periodic task: the virtual gateways)
from portal.jobs.handlers import (  # noqa: F401
    accounts,
    alerts,
    devices,
    housekeeping,
    keys,
    pin_schedule,
    push,
    reports,
    webhooks,  # noqa: F401
)

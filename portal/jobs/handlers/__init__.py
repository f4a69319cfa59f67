"""Job handlers, one module per area; each owner adds ONE import line below."""
from portal.devices import manager  # noqa: F401  (periodic task: the virtual gateways)
from portal.jobs.handlers import (
    accounts,  # noqa: F401
    devices,  # noqa: F401
    housekeeping,  # noqa: F401
)

"""Errors the service layer raises; views turn them into form errors, flashes or 404s."""


class ServiceError(Exception):
    """A request the service refused. `field` names the form field at fault, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    """The object does not exist, or belongs to another household (indistinguishable)."""

    def __init__(self, message: str = "Not found."):
        super().__init__(message)


class Forbidden(ServiceError):
    """The caller is in the household but lacks the role (e.g. only owners may invite)."""


class ValidationFailed(ServiceError):
    """Input that fails a rule the form cannot check alone (duplicate, weak PIN, ...)."""


class Conflict(ServiceError):
    """The object is in a state that does not allow this now (e.g. still provisioning)."""

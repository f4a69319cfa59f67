"""Everything that speaks StreamIoT (the Mainflux 0.13.0 API): client, messages, emulator."""
from .client import StreamIoT, UserAPI
from .errors import (
    BadRequest,
    Conflict,
    NotFound,
    ProtocolError,
    ServerError,
    StreamIoTError,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "StreamIoT",
    "UserAPI",
    "StreamIoTError",
    "Unavailable",
    "Unauthorized",
    "NotFound",
    "Conflict",
    "BadRequest",
    "ServerError",
    "ProtocolError",
]

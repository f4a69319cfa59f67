"""Requests the portal makes to addresses its users gave it (webhook URLs, browsers' push
services): only to the public internet, to the very address that was vetted, and within a
total time.

- `vet(url, ...)` resolves the host once and refuses the URL unless every address is public
  (no loopback, private, link-local, multicast or reserved ranges).
- `post(target, ...)` connects to the first vetted address while the URL's host goes in the
  Host header and, for https, in the TLS SNI and the certificate check, so the name is never
  resolved a second time (no DNS rebinding between the check and the connection). No proxy
  from the environment, no redirects.
- A total deadline: a server that drips its answer one byte at a time keeps resetting a
  read timeout, so a watchdog shuts the socket when the whole request took too long.
"""
import contextlib
import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class NotPublic(Exception):
    """The URL can't be used: `message` says why, in plain words."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect (the resolved addresses, all public) and what to ask."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def address_problem(address: str, allowed: tuple = ()) -> str | None:
    """Why `address` is not on the public internet, or None (`allowed`: networks a test's own
    receiver lives in)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(net) for net in allowed):
        return None
    if ip.is_loopback or ip.is_unspecified:
        return "This address points at the portal's own machine: use an address on the internet."
    if ip.is_private or ip.is_link_local:
        return "This address points inside a private network: use an address on the internet."
    if ip.is_multicast or ip.is_reserved or not ip.is_global:
        return "This address is not on the public internet."
    return None


def vet(url: str, *, schemes: tuple[str, ...] = ("https",), allowed: tuple = ()) -> Target:
    """The URL's Target, or NotPublic with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise NotPublic("The address must start with https://." if schemes == ("https",) or not parts.scheme
                        else "The address must start with https:// or http://.")
    if parts.username is not None or parts.password is not None:
        raise NotPublic("Leave the user name and password out of the address.")
    host = parts.hostname
    if not host:
        raise NotPublic("The address has no host name.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise NotPublic("The address's port is not a number between 1 and 65535.") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise NotPublic("The address's host name could not be found.") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise NotPublic("The address's host name could not be found.")
    for address in addresses:
        problem = address_problem(address, allowed)
        if problem:
            raise NotPublic(problem)
    return Target(url, parts.scheme, host, port, addresses)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """The sockets a request opened, so a watchdog can shut them."""

    def __init__(self):
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.expired = False

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            if self.expired:
                _shut(sock)
            self.sockets.append(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _watched_connection(base: type, watched: _Watched) -> type:
    class Connection(base):  # type: ignore[misc,valid-type]
        def connect(self):
            super().connect()
            watched.add(self.sock)

    return Connection


class _Pinned(HTTPAdapter):
    """Connects to the URL's vetted IP address while TLS checks the certificate for `hostname`;
    every socket it opens is watched."""

    def __init__(self, hostname: str, watched: _Watched):
        self.hostname = hostname
        self.watched = watched
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        watched = self.watched

        class Plain(HTTPConnectionPool):
            ConnectionCls = _watched_connection(HTTPConnection, watched)

        class Secure(HTTPSConnectionPool):
            ConnectionCls = _watched_connection(HTTPSConnection, watched)

        self.poolmanager.pool_classes_by_scheme = {"http": Plain, "https": Secure}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https":
            # urllib3's pool keys take these (PoolKey.key_server_hostname / key_assert_hostname);
            # requests' type stubs list fewer keys.
            extra = cast(dict, pool_kwargs)
            extra["server_hostname"] = self.hostname
            extra["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def pinned_url(target: Target) -> str:
    """The URL with its host replaced by the first vetted address."""
    parts = urlsplit(target.url)
    ip = ipaddress.ip_address(target.addresses[0].split("%", 1)[0])
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def host_header(target: Target) -> str:
    parts = urlsplit(target.url)
    host = parts.hostname or target.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


class Session(requests.Session):
    """A session for one request to a vetted target: pinned, no environment proxies, and shut
    after `total` seconds whatever the server does (the request then fails with a
    ConnectionError; `timed_out` tells it apart)."""

    def __init__(self, target: Target, total: float):
        super().__init__()
        self.trust_env = False
        self.max_redirects = 0
        self._watched = _Watched()
        self.mount(f"{target.scheme}://", _Pinned(target.host, self._watched))
        self._timer = threading.Timer(total, self._watched.expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def timed_out(self) -> bool:
        return self._watched.expired

    def close(self) -> None:
        self._timer.cancel()
        super().close()

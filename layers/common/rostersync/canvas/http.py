"""HTTP sessions for Canvas that refuse to connect to non-public addresses (SSRF), checked per socket.

A name that resolved to a public address when the admin saved it can resolve elsewhere later (DNS
rebinding). So every new connection resolves the name itself, checks every address, and connects to
a checked address: no handshake is ever made with loopback, link-local, private, unique-local or
translated addresses, unless the explicit development setting allows loopback for the local stack.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

from rostersync.canvas.errors import UnsafeCanvasUrlError
from rostersync.canvas.urls import IpAddress, is_allowed_address, resolved_addresses


def _checked_addresses(connection: HTTPConnection, allow_insecure: bool) -> list[IpAddress]:
    try:
        addresses = resolved_addresses(connection._dns_host, connection.port)
    except socket.gaierror as error:
        raise NameResolutionError(connection.host, connection, error) from error
    if not addresses or not all(is_allowed_address(a, allow_insecure=allow_insecure) for a in addresses):
        raise UnsafeCanvasUrlError(
            f"the Canvas host {connection.host!r} now resolves to a non-public address; not connecting"
        )
    return addresses


def _connect_to_checked_address(connection: HTTPConnection, allow_insecure: bool) -> socket.socket:
    """urllib3's own connect, aimed at each checked address in turn (TLS still verifies the name)."""
    host = connection._dns_host
    failure: NewConnectionError | None = None
    try:
        for address in _checked_addresses(connection, allow_insecure):
            connection._dns_host = str(address)
            try:
                return HTTPConnection._new_conn(connection)
            except NewConnectionError as error:
                failure = error
    finally:
        connection._dns_host = host
    assert failure is not None  # _checked_addresses returned at least one address
    raise failure


class _PublicHTTPConnection(HTTPConnection):
    allow_insecure = False

    def _new_conn(self) -> socket.socket:
        return _connect_to_checked_address(self, self.allow_insecure)


class _PublicHTTPSConnection(HTTPSConnection):
    allow_insecure = False

    def _new_conn(self) -> socket.socket:
        return _connect_to_checked_address(self, self.allow_insecure)


class _LoopbackHTTPConnection(_PublicHTTPConnection):
    allow_insecure = True


class _LoopbackHTTPSConnection(_PublicHTTPSConnection):
    allow_insecure = True


def _pool(base: type[HTTPConnectionPool], connection: type[HTTPConnection]) -> type[HTTPConnectionPool]:
    return type(f"Checked{base.__name__}", (base,), {"ConnectionCls": connection})


class PublicAddressAdapter(HTTPAdapter):
    def __init__(self, *, allow_insecure: bool, **kwargs: Any) -> None:
        self._allow_insecure = allow_insecure
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http, https = (
            (_LoopbackHTTPConnection, _LoopbackHTTPSConnection)
            if self._allow_insecure
            else (_PublicHTTPConnection, _PublicHTTPSConnection)
        )
        self.poolmanager.pool_classes_by_scheme = {
            "http": _pool(HTTPConnectionPool, http),
            "https": _pool(HTTPSConnectionPool, https),
        }


def canvas_session(*, allow_insecure: bool) -> requests.Session:
    session = requests.Session()
    adapter = PublicAddressAdapter(allow_insecure=allow_insecure)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session

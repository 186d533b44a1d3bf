"""HTTP sessions for Canvas that refuse to connect to non-public addresses (SSRF), checked per socket.

A name that resolved to a public address when the admin saved it can resolve elsewhere later (DNS
rebinding). Checking the peer of every new connection closes that gap: whatever the name says, we
never exchange a byte with loopback, link-local, private or unique-local addresses, unless the
explicit development setting allows loopback for the local stack.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from rostersync.canvas.errors import UnsafeCanvasUrlError
from rostersync.canvas.urls import is_allowed_address


def _checked(sock: socket.socket, host: str, allow_insecure: bool) -> socket.socket:
    peer = ipaddress.ip_address(sock.getpeername()[0])
    if not is_allowed_address(peer, allow_insecure=allow_insecure):
        sock.close()
        raise UnsafeCanvasUrlError(
            f"the Canvas host {host!r} now resolves to a non-public address; not connecting"
        )
    return sock


class _PublicHTTPConnection(HTTPConnection):
    allow_insecure = False

    def _new_conn(self) -> socket.socket:
        return _checked(super()._new_conn(), self.host, self.allow_insecure)


class _PublicHTTPSConnection(HTTPSConnection):
    allow_insecure = False

    def _new_conn(self) -> socket.socket:
        return _checked(super()._new_conn(), self.host, self.allow_insecure)


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

"""Canvas URL safety: an admin-typed URL must never be a way into our own network (SSRF)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from rostersync.canvas.errors import UnsafeCanvasUrlError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# IPv6 forms that carry an IPv4 address a translator may forward to: NAT64 (well-known and local-use
# prefixes), IPv4-compatible and IPv4-translated addresses. Nothing public needs them to reach Canvas.
REFUSED_IPV6_NETWORKS = tuple(
    ipaddress.IPv6Network(network)
    for network in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96")
)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, 6to4, Teredo server and client)."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def _is_public(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in REFUSED_IPV6_NETWORKS):
            return False
        embedded = _embedded_ipv4(address)
        if embedded:
            return all(_is_public(inner) for inner in embedded)
    return address.is_global and not address.is_multicast


def is_allowed_address(address: IpAddress, *, allow_insecure: bool) -> bool:
    """Public addresses always; loopback only under the explicit development setting."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return _is_public(address) or (allow_insecure and address.is_loopback)


def resolved_addresses(host: str, port: int) -> list[IpAddress]:
    """Every address the name resolves to now (raises socket.gaierror when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # A scoped IPv6 address comes back as "fe80::1%eth0": the scope is not part of the address.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return resolved_addresses(host, port)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeCanvasUrlError(f"the Canvas host {host!r} does not resolve") from error


def normalize_canvas_url(url: str, *, allow_insecure: bool) -> str:
    """Check an admin-typed Canvas URL and return its origin (scheme://host[:port]).

    Secure mode: https only, and every address the name resolves to is public. Insecure mode is the
    explicit development setting of the local stack: http and loopback are allowed as well.
    """
    parts = urlsplit(url.strip())
    allowed_schemes = {"https", "http"} if allow_insecure else {"https"}
    if parts.scheme not in allowed_schemes:
        raise UnsafeCanvasUrlError("the Canvas URL must start with https://")
    if not parts.hostname or parts.username or parts.password:
        raise UnsafeCanvasUrlError("the Canvas URL must name a host and carry no credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeCanvasUrlError(
            "the Canvas URL is the server's address only, e.g. https://school.instructure.com"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeCanvasUrlError("the Canvas URL has an invalid port") from error
    host = parts.hostname.lower()
    check_host_is_reachable_safely(host, port, allow_insecure=allow_insecure)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host:
        netloc = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    return f"{parts.scheme}://{netloc}"


def check_host_is_reachable_safely(host: str, port: int, *, allow_insecure: bool) -> None:
    """Refuse a host that resolves to a non-public address (loopback allowed only in insecure mode)."""
    for address in _resolve(host, port):
        if not is_allowed_address(address, allow_insecure=allow_insecure):
            raise UnsafeCanvasUrlError(f"the Canvas host {host!r} resolves to a non-public address")


def check_origin_is_reachable_safely(url: str, *, allow_insecure: bool) -> str:
    """The URL's origin, after refusing it if its host now resolves to a non-public address."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise UnsafeCanvasUrlError("the Canvas URL names no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    check_host_is_reachable_safely(parts.hostname, port, allow_insecure=allow_insecure)
    return f"{parts.scheme}://{parts.netloc}"

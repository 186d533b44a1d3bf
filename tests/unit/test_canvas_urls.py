import contextlib
import socket
import threading

import pytest
import requests

from rostersync.canvas.errors import UnsafeCanvasUrlError
from rostersync.canvas.http import canvas_session
from rostersync.canvas.urls import check_host_is_reachable_safely, normalize_canvas_url

UNSAFE_CANVAS_URLS = [
    "http://canvas.example.edu",  # not https
    "ftp://canvas.example.edu",
    "https://127.0.0.1",
    "https://localhost",
    "https://169.254.169.254",  # cloud metadata
    "https://10.0.0.5",
    "https://192.168.1.1",
    "https://172.16.0.1",
    "https://[::1]",
    "https://[fd00::1]",  # unique local
    "https://[::ffff:127.0.0.1]",  # IPv4-mapped loopback
    "https://2130706433",  # 127.0.0.1 as one decimal number
    "https://0177.0.0.1",  # octal loopback
    "https://0.0.0.0",
    "https://100.64.0.1",  # shared address space (carrier-grade NAT)
    "https://198.18.0.1",  # benchmarking
    "https://192.0.0.8",  # IETF protocol assignments
    "https://240.0.0.1",  # reserved
    "https://[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "https://[64:ff9b::808:808]",  # NAT64, even of a public address: a translator forwards it
    "https://[64:ff9b:1::a00:1]",  # local-use NAT64
    "https://[::10.0.0.1]",  # IPv4-compatible
    "https://[::ffff:0:10.0.0.1]",  # IPv4-translated
    "https://[::ffff:a9fe:a9fe]",  # IPv4-mapped metadata address, in hex
    "https://[2002:a00:1::]",  # 6to4 of 10.0.0.1
    "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]",  # Teredo whose client is 10.0.0.1
    "https://user:pass@canvas.example.edu",
    "https://canvas.example.edu/login?x=1",
]


@pytest.mark.parametrize("url", UNSAFE_CANVAS_URLS)
def test_unsafe_canvas_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeCanvasUrlError):
        normalize_canvas_url(url, allow_insecure=False)


def test_a_public_address_is_accepted_and_reduced_to_its_origin() -> None:
    assert normalize_canvas_url("https://8.8.8.8/", allow_insecure=False) == "https://8.8.8.8"


def test_development_setting_allows_http_on_loopback_only() -> None:
    assert normalize_canvas_url("http://127.0.0.1:8900", allow_insecure=True) == "http://127.0.0.1:8900"
    with pytest.raises(UnsafeCanvasUrlError):
        normalize_canvas_url("http://10.1.2.3", allow_insecure=True)
    with pytest.raises(UnsafeCanvasUrlError):
        normalize_canvas_url("http://169.254.169.254", allow_insecure=True)


def test_connect_time_check_refuses_loopback_in_secure_mode() -> None:
    with pytest.raises(UnsafeCanvasUrlError):
        check_host_is_reachable_safely("127.0.0.1", 443, allow_insecure=False)


def test_a_refused_address_is_never_connected_to() -> None:
    """The peer is checked before the handshake: a listener on loopback sees no connection at all."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(TimeoutError):
            accepted.append(listener.accept())

    waiter = threading.Thread(target=accept)
    waiter.start()
    with pytest.raises(UnsafeCanvasUrlError):
        canvas_session(allow_insecure=False).get(f"http://localhost:{port}/api/v1/accounts", timeout=2)
    waiter.join()
    listener.close()
    assert accepted == []


def test_a_checked_address_is_connected_to_under_the_development_setting() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        connection, _ = listener.accept()
        connection.recv(4096)
        connection.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        connection.close()

    threading.Thread(target=answer, daemon=True).start()
    response = canvas_session(allow_insecure=True).get(f"http://localhost:{port}/", timeout=5)
    listener.close()
    assert response.status_code == 204


def test_a_name_that_does_not_resolve_is_a_connection_error() -> None:
    with pytest.raises(requests.ConnectionError):
        canvas_session(allow_insecure=False).get("https://no-such-host.invalid/", timeout=2)

import pytest

from rostersync.canvas.errors import UnsafeCanvasUrlError
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

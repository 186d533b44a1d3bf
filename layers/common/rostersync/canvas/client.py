"""A Canvas REST client that behaves as a good Canvas citizen.

Timeouts on every request, a User-Agent naming us, bounded retries with exponential backoff and
jitter for 5xx, timeouts and throttling, one token refresh on a 401 that asks for it, `Link`
pagination followed to the end (never built by hand), and no call outside the scope manifest.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.utils import parse_header_links

from rostersync import __version__
from rostersync.canvas.concurrency import CANVAS_PRE_FLIGHT_PENALTY, RateLimitObserver
from rostersync.canvas.errors import (
    AuthorizationError,
    CanvasError,
    CanvasNotFoundError,
    CanvasPermissionError,
    CanvasUnavailableError,
    CanvasWriteUncertainError,
    InsufficientScopeError,
    UndeclaredEndpointError,
    UnsafeCanvasUrlError,
)
from rostersync.canvas.http import canvas_session
from rostersync.canvas.scopes import Endpoint, declared_endpoint
from rostersync.canvas.urls import check_origin_is_reachable_safely

USER_AGENT = f"rostersync/{__version__} (+https://github.com/rostersync/rostersync)"
PER_PAGE = 100
# A renewal may only hand back the token another worker refreshed, which a revoked grant has killed too:
# the second renewal refreshes, and a refused refresh marks the tenant for authorizing again.
TOKEN_RENEWALS = 2
Params = list[tuple[str, str]]


class TokenSource(Protocol):
    def access_token(self) -> str:
        """A token believed valid now."""
        ...

    def renew(self, rejected_token: str) -> str:
        """A fresh token after Canvas rejected `rejected_token`."""
        ...


@dataclass
class RequestStats:
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    paced: int = 0  # pauses taken because X-Rate-Limit-Remaining ran low


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Throttling has its own, larger budget: waiting is what cures it."""

    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 20.0
    max_throttle_retries: int = 8
    throttle_backoff_base_seconds: float = 1.0
    # Below this much headroom (room for two more requests' pre-flight penalties of Canvas's bucket, 600
    # by default) we pause before the next call; above it, the in-flight limit is the brake.
    slow_down_below_remaining: float = 2 * CANVAS_PRE_FLIGHT_PENALTY
    max_pace_pause_seconds: float = 2.0

    def delay(self, retry: int, retry_after: str | None = None, *, throttled: bool = False) -> float:
        waited = retry_after_seconds(retry_after) if retry_after is not None else None
        if waited is not None:
            return min(max(waited, 0.0), self.backoff_cap_seconds)
        base = self.throttle_backoff_base_seconds if throttled else self.backoff_base_seconds
        exponential: float = base * 2 ** (retry - 1)
        jittered: float = exponential * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not cryptography
        return min(jittered, self.backoff_cap_seconds)

    def pace(self, remaining: float) -> float:
        """Seconds to pause after a response that left `remaining` in the bucket."""
        if remaining >= self.slow_down_below_remaining:
            return 0.0
        return self.max_pace_pause_seconds * (1 - max(remaining, 0.0) / self.slow_down_below_remaining)


def retry_after_seconds(value: str, now: Callable[[], float] = time.time) -> float | None:
    """A Retry-After header in either form RFC 9110 allows: delay-seconds or an HTTP date."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; an obsolete form may arrive without a zone
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now()


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))[:200]
        for key in ("message", "error_description", "error"):
            if key in body:
                return str(body[key])[:200]
    return str(body)[:200]


def _is_throttled(response: requests.Response) -> bool:
    if response.status_code == 429:
        return True
    return response.status_code == 403 and (
        "rate limit exceeded" in response.text.lower()
        or response.headers.get("X-Rate-Limit-Remaining", "").strip() in {"0", "0.0"}
    )


def next_page_url(response: requests.Response) -> str | None:
    header = response.headers.get("Link")
    if not header:
        return None
    for link in parse_header_links(header):
        # Parameter names and values are case-insensitive (RFC 8288): rel, REL, "Next".
        relations = {key.lower(): value for key, value in link.items()}.get("rel", "").lower().split()
        if "next" in relations and link.get("url"):
            return link["url"]
    return None


def _page_items(endpoint: Endpoint, body: Any) -> list[Any]:
    key = endpoint.list_key
    if key is not None:
        if not isinstance(body, dict):
            raise CanvasError(f"{endpoint.route} returned {type(body).__name__}, expected an object")
        body = body.get(key)
        if not isinstance(body, list):
            raise CanvasError(f"{endpoint.route} returned no {key!r} list")
    elif not isinstance(body, list):
        raise CanvasError(f"{endpoint.route} returned {type(body).__name__}, expected a list")
    return body


class CanvasClient:
    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        allow_insecure: bool = False,
        timeout_seconds: float = 20.0,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rate_limit: RateLimitObserver | None = None,
    ) -> None:
        # Checked again at connect time: a name that resolved safely when saved may not any more.
        self._origin = check_origin_is_reachable_safely(base_url, allow_insecure=allow_insecure)
        self._tokens = tokens
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._session = session or canvas_session(allow_insecure=allow_insecure)
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.stats = RequestStats()
        self._stats_lock = threading.Lock()  # lists of one course are read from several threads
        self._rate_limit = rate_limit

    def _count(self, *, requests: int = 0, throttled: int = 0, retries: int = 0, paced: int = 0) -> None:
        with self._stats_lock:
            self.stats.requests += requests
            self.stats.throttled += throttled
            self.stats.retries += retries
            self.stats.paced += paced

    def get_one(self, endpoint: Endpoint, params: Params | None = None, **path: int | str) -> Any:
        return self._request(endpoint, self._origin + endpoint.path(**path), params or []).json()

    def write(self, endpoint: Endpoint, form: Params, **path: int | str) -> Any:
        """A POST or PUT with its fields as a form body; returns Canvas's JSON answer.

        Sent once: a 5xx, timeout or dropped connection raises CanvasWriteUncertainError (the write may
        have landed), so the caller can read Canvas before sending again. Throttling is still retried:
        Canvas refuses a throttled request before running it.
        """
        return self._request(endpoint, self._origin + endpoint.path(**path), form).json()

    def get_all(self, endpoint: Endpoint, params: Params | None = None, **path: int | str) -> list[Any]:
        """Every item of a paginated list; nothing is returned unless every page arrived.

        Safe to call from several threads at once (one connection pool, counted together)."""
        return [item for page in self.pages(endpoint, params, **path) for item in page]

    def pages(
        self, endpoint: Endpoint, params: Params | None = None, **path: int | str
    ) -> Iterator[list[Any]]:
        """Each page's list: the body itself, or the list under `endpoint.list_key` for the few endpoints
        that wrap it in an object (e.g. `{"results": [...]}`)."""
        url: str | None = self._origin + endpoint.path(**path)
        query: Params = [*(params or []), ("per_page", str(PER_PAGE))]
        while url is not None:
            response = self._request(endpoint, url, query)
            yield _page_items(endpoint, response.json())
            url = next_page_url(response)
            query = []  # a next link carries every parameter it needs
            if url is not None and not url.startswith(self._origin + "/"):
                raise UnsafeCanvasUrlError("Canvas sent a pagination link to another host; not followed")

    def _request(self, endpoint: Endpoint, url: str, params: Params) -> requests.Response:
        method = endpoint.method
        path = urlsplit(url).path
        if declared_endpoint(method, path) is not endpoint:
            raise UndeclaredEndpointError(f"{method} {path} is not {endpoint.scope}")
        renewals = 0
        failures = throttles = 0
        while True:
            token = self._tokens.access_token()
            # Writes carry their fields as a form body, never in the URL (grades and comments included).
            query, form = (params, None) if method == "GET" else (None, params)
            try:
                response = self._session.request(
                    method,
                    url,
                    params=query,
                    data=form,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                failures += 1
                self._retry_or_give_up(method, failures, f"{type(error).__name__} calling {endpoint.route}")
                continue
            self._count(requests=1)
            status = response.status_code
            if status == 401:
                message = _error_message(response)
                if "insufficient scopes" in message.lower():
                    raise InsufficientScopeError(endpoint.scope)
                if "WWW-Authenticate" not in response.headers:
                    raise CanvasPermissionError(f"{endpoint.route}: {message}", status=status)
                if renewals == TOKEN_RENEWALS:
                    raise AuthorizationError("Canvas rejected the renewed access token", status=status)
                self._tokens.renew(token)
                renewals += 1
                continue
            if _is_throttled(response):
                throttles += 1
                self._wait_after_throttle(endpoint, throttles, response.headers.get("Retry-After"))
                continue
            if status >= 500:
                failures += 1
                self._retry_or_give_up(
                    method,
                    failures,
                    f"Canvas answered {status} on {endpoint.route}",
                    response.headers.get("Retry-After"),
                )
                continue
            self._pace(response)
            if status == 404:
                raise CanvasNotFoundError(f"{endpoint.route}: {_error_message(response)}", status=status)
            if 300 <= status < 400:
                raise CanvasError(
                    f"{endpoint.route} answered a redirect ({status}); not followed", status=status
                )
            if status == 403:
                raise CanvasPermissionError(f"{endpoint.route}: {_error_message(response)}", status=status)
            if status >= 400:
                raise CanvasError(
                    f"{endpoint.route} answered {status}: {_error_message(response)}", status=status
                )
            return response

    def _wait_after_throttle(self, endpoint: Endpoint, throttles: int, retry_after: str | None) -> None:
        """Slow the tenant down and wait before the next try, or give up after the throttle budget."""
        if self._rate_limit is not None:
            self._rate_limit.throttled()
        if throttles > self._retry.max_throttle_retries:
            self._count(throttled=1)
            raise CanvasUnavailableError(f"throttled by Canvas on {endpoint.route} {throttles} times")
        self._count(throttled=1, retries=1)
        self._sleep(self._retry.delay(throttles, retry_after, throttled=True))

    def _retry_or_give_up(
        self, method: str, failures: int, reason: str, retry_after: str | None = None
    ) -> None:
        if method != "GET":  # the write may have landed: the caller reads Canvas before sending it again
            raise CanvasWriteUncertainError(reason)
        if failures >= self._retry.max_attempts:
            raise CanvasUnavailableError(f"{reason} (after {failures} attempts)")
        self._count(retries=1)
        self._sleep(self._retry.delay(failures, retry_after))

    def _pace(self, response: requests.Response) -> None:
        """Tell the in-flight limit how full the bucket is, and slow down before it empties, rather than
        be throttled."""
        try:
            remaining = float(response.headers["X-Rate-Limit-Remaining"])
        except (KeyError, ValueError):
            return
        if self._rate_limit is not None:
            self._rate_limit.observe(remaining)
        pause = self._retry.pace(remaining)
        if pause > 0:
            self._count(paced=1)
            self._sleep(pause)

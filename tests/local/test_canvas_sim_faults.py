"""Canvas simulator: leaky-bucket throttling, latency and random faults (real servers via ``serve()``)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from rostersync_local.canvas_sim.__main__ import config_from_args, parse_args

TIMEOUT = 10
THROTTLED_403 = "403 Forbidden (Rate Limit Exceeded)\n"
THROTTLED_429 = "429 Too Many Requests (Rate Limit Exceeded)\n"
ERROR_500 = {
    "errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}],
    "error_report_id": 12345,
}


class FrozenClock:
    """Replaces ``state.clock``: time only moves when a test says so."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------------------------- helpers
def start(**settings: Any) -> RunningSimulator:
    return serve(SimulatorConfig(seed=3, courses=6, **settings))


@pytest.fixture
def make_sim() -> Iterator[Any]:
    """``make_sim(**config)`` -> a running simulator, stopped after the test."""
    running: list[RunningSimulator] = []

    def make(**settings: Any) -> RunningSimulator:
        sim = start(**settings)
        running.append(sim)
        return sim

    yield make
    for sim in running:
        sim.stop()


def freeze(sim: RunningSimulator) -> FrozenClock:
    clock = FrozenClock(sim.state.clock())
    sim.state.clock = clock
    return clock


def api(sim: RunningSimulator, token: str, path: str = "/accounts", **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.get(f"{sim.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs)


def configure(sim: RunningSimulator, **settings: Any) -> dict[str, Any]:
    response = requests.post(f"{sim.url}/_sim/config", json=settings, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stats(sim: RunningSimulator) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{sim.url}/_sim/stats", timeout=TIMEOUT).json()
    return body


def burst(sim: RunningSimulator, token: str, count: int, path: str = "/accounts") -> list[requests.Response]:
    """``count`` requests released at the same moment from as many threads."""
    barrier = threading.Barrier(count)
    responses: list[requests.Response] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            response = api(sim, token, path)
            with guard:
                responses.append(response)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert not errors, errors
    assert len(responses) == count
    return responses


def assert_throttled(response: requests.Response, status: int = 403) -> None:
    assert response.status_code == status
    assert response.text == (THROTTLED_403 if status == 403 else THROTTLED_429)
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Rate-Limit-Remaining"] == "0.0"
    assert "X-Request-Cost" not in response.headers


# --------------------------------------------------------------------------------------------- defaults
def test_defaults_never_throttle_delay_or_fail(make_sim: Any) -> None:
    config = SimulatorConfig()
    assert (config.throttle, config.latency_ms, config.latency_jitter_ms) == (False, 0.0, 0.0)
    assert (config.fault_rate, config.timeout_rate, config.reset_rate) == (0.0, 0.0, 0.0)
    assert (config.throttle_high_water, config.throttle_maximum) == (600.0, 800.0)
    assert (config.throttle_leak_per_second, config.throttle_up_front_cost) == (10.0, 50.0)
    assert (config.throttle_style, config.timeout_stall_seconds, config.fault_seed) == ("403", 30.0, None)
    sim = make_sim()
    token = sim.create_token()["access_token"]
    responses = burst(sim, token, 30)
    assert {r.status_code for r in responses} == {200}
    assert {r.headers["X-Rate-Limit-Remaining"] for r in responses} == {"600.0"}
    # the documented model: no latency, so only the CPU term of the one account listed
    assert {r.headers["X-Request-Cost"] for r in responses} == {"0.0001"}
    assert stats(sim)["throttled_total"] == 0
    assert stats(sim)["faults_total"] == {"error": 0, "throttle": 0, "timeout": 0, "reset": 0}


def test_the_stress_model_costs_base_plus_per_item(make_sim: Any) -> None:
    sim = make_sim(cost_model="stress", request_cost_base=2.0, request_cost_per_item=0.25)
    token = sim.create_token()["access_token"]
    page = api(sim, token, "/accounts/1/courses", params={"per_page": 4})
    assert page.status_code == 200 and len(page.json()) == 4
    assert page.headers["X-Request-Cost"] == "3.0"
    single = api(sim, token, "/accounts/1")
    assert single.status_code == 200 and single.headers["X-Request-Cost"] == "2.0"
    missing = api(sim, token, "/courses/99999/sections")
    assert missing.status_code == 404 and missing.headers["X-Request-Cost"] == "2.0"
    # throttle off: the remaining header is the high-water mark
    assert page.headers["X-Rate-Limit-Remaining"] == "600.0"


def test_the_documented_model_costs_the_server_time_and_reports_it(make_sim: Any) -> None:
    sim = make_sim(latency_ms=120, cpu_seconds_per_item=0.01)
    token = sim.create_token()["access_token"]
    page = api(sim, token, "/accounts/1/courses", params={"per_page": 4})
    assert page.status_code == 200 and len(page.json()) == 4
    assert float(page.headers["X-Request-Cost"]) == pytest.approx(0.12 + 4 * 0.01)
    single = api(sim, token, "/accounts/1")
    assert float(single.headers["X-Request-Cost"]) == pytest.approx(0.12)
    snapshot = stats(sim)
    assert snapshot["costed_requests"] == 2
    assert snapshot["request_cost_total"] == pytest.approx(0.28)
    assert snapshot["latency_seconds_total"] == pytest.approx(0.24)


def test_the_documented_model_never_throttles_one_request_at_a_time(make_sim: Any) -> None:
    # Canvas's defaults: a sequential client spends at most one server second per second, the bucket
    # leaks 10, so the remaining quota never falls below high-water minus a request's cost
    sim = make_sim(throttle=True, latency_ms=20)
    token = sim.create_token()["access_token"]
    remaining = [float(api(sim, token).headers["X-Rate-Limit-Remaining"]) for _ in range(40)]
    assert min(remaining) > 599.0
    assert stats(sim)["throttled_total"] == 0


def test_the_documented_defaults_let_about_twelve_requests_run_at_once(make_sim: Any) -> None:
    sim = make_sim(throttle=True, latency_ms=400)
    freeze(sim)  # no leak during the burst: exact levels
    token = sim.create_token()["access_token"]
    responses = burst(sim, token, 16)
    # admitted at levels 0, 50, ..., 600 (not above the high-water mark): 13; then 650 is refused
    assert Counter(r.status_code for r in responses) == {200: 13, 403: 3}
    assert stats(sim)["peak_in_flight"] == 13


# --------------------------------------------------------------------------------------------- throttle
def test_concurrent_requests_overlap_up_front_costs_and_get_throttled(make_sim: Any) -> None:
    sim = make_sim(throttle=True, throttle_high_water=100, throttle_maximum=200, throttle_up_front_cost=50,
                   cost_model="stress", request_cost_per_item=0.0, latency_ms=400)  # fmt: skip
    freeze(sim)  # no leak during the burst: exact levels
    token = sim.create_token()["access_token"]
    responses = burst(sim, token, 12)
    by_status = Counter(r.status_code for r in responses)
    # levels at admission 0, 50, 100 are not above 100; 150 is -> exactly three get in while in flight
    assert by_status == {200: 3, 403: 9}
    for response in responses:
        if response.status_code == 403:
            assert_throttled(response)
    ok = [r for r in responses if r.status_code == 200]
    assert {r.headers["X-Request-Cost"] for r in ok} == {"1.0"}
    # finishing refunds 50 and adds 1: level 150 -> 101 -> 52 -> 3 (remaining clamped at 0.0)
    assert sorted(float(r.headers["X-Rate-Limit-Remaining"]) for r in ok) == [0.0, 48.0, 97.0]
    snapshot = stats(sim)
    assert snapshot["throttled_total"] == 9
    assert snapshot["throttled_by_route"] == {"GET /api/v1/accounts": 9}
    assert snapshot["by_route"] == {"GET /api/v1/accounts": 12}
    assert snapshot["requests_total"] == 12


def test_remaining_decreases_under_load_and_recovers_after_leaking(make_sim: Any) -> None:
    sim = make_sim(throttle=True, throttle_high_water=100, throttle_maximum=200, throttle_leak_per_second=10,
                   cost_model="stress", request_cost_base=30, request_cost_per_item=0.0)  # fmt: skip
    clock = freeze(sim)
    token = sim.create_token()["access_token"]
    remaining = []
    for _ in range(4):
        response = api(sim, token)
        assert response.status_code == 200
        assert response.headers["X-Request-Cost"] == "30.0"
        remaining.append(float(response.headers["X-Rate-Limit-Remaining"]))
    assert remaining == [70.0, 40.0, 10.0, 0.0]  # level 30, 60, 90, 120
    assert_throttled(api(sim, token))  # 120 > 100: refused, and the handler does not run
    assert_throttled(api(sim, token))
    clock.advance(10)  # leaks 100: level 20
    recovered = api(sim, token)
    assert recovered.status_code == 200 and recovered.headers["X-Rate-Limit-Remaining"] == "50.0"
    # a second token has its own bucket
    other = sim.create_token()["access_token"]
    assert api(sim, other).headers["X-Rate-Limit-Remaining"] == "70.0"
    assert stats(sim)["throttled_total"] == 2


def test_bucket_level_is_capped_at_maximum(make_sim: Any) -> None:
    sim = make_sim(throttle=True, throttle_high_water=100, throttle_maximum=200, cost_model="stress",
                   request_cost_base=500)  # fmt: skip
    clock = freeze(sim)
    token = sim.create_token()["access_token"]
    assert api(sim, token).headers["X-Rate-Limit-Remaining"] == "0.0"  # level min(500, 200)
    clock.advance(9.9)  # 200 - 99 = 101: still above the high-water mark
    assert_throttled(api(sim, token))
    clock.advance(0.1)  # 100: not above -> admitted (it would be 400 without the cap)
    assert api(sim, token).status_code == 200


def test_bucket_leaks_in_real_time(make_sim: Any) -> None:
    sim = make_sim(throttle=True, throttle_high_water=100, throttle_maximum=200, throttle_leak_per_second=200,
                   cost_model="stress", request_cost_base=150, request_cost_per_item=0.0)  # fmt: skip
    token = sim.create_token()["access_token"]
    assert api(sim, token).status_code == 200  # level 150
    assert_throttled(api(sim, token))  # leaked ~1 in a few ms
    time.sleep(0.35)  # leaks 70
    assert api(sim, token).status_code == 200


def test_429_style_and_switching_the_throttle_at_run_time(make_sim: Any) -> None:
    sim = make_sim(cost_model="stress", request_cost_base=150, request_cost_per_item=0.0)
    clock = freeze(sim)
    token = sim.create_token()["access_token"]
    for _ in range(3):  # throttle off: never refused, remaining stays at the high-water mark
        assert api(sim, token).headers["X-Rate-Limit-Remaining"] == "600.0"
    config = configure(sim, throttle=True, throttle_high_water=100, throttle_style="429")
    assert config["throttle"] is True and config["throttle_style"] == "429"
    assert config["throttle_high_water"] == 100.0
    assert api(sim, token).status_code == 200
    assert_throttled(api(sim, token), status=429)
    configure(sim, throttle_style=403)  # the number is accepted too
    assert_throttled(api(sim, token), status=403)
    configure(sim, throttle=False)
    assert api(sim, token).status_code == 200
    configure(sim, throttle=True)
    clock.advance(15)
    assert api(sim, token).status_code == 200


def test_throttle_fault_rule_uses_its_status_text(make_sim: Any) -> None:
    sim = make_sim()
    token = sim.create_token()["access_token"]
    rule = {"status": 429, "path_regex": "/api/v1/accounts", "kind": "throttle"}
    assert requests.post(f"{sim.url}/_sim/faults", json=rule, timeout=TIMEOUT).status_code == 201
    assert_throttled(api(sim, token), status=429)
    assert api(sim, token).status_code == 200
    assert stats(sim)["faults_total"]["throttle"] == 1


# ---------------------------------------------------------------------------------------------- latency
def test_latency_applies_to_api_requests_outside_the_lock(make_sim: Any) -> None:
    sim = make_sim(latency_ms=300)
    token = sim.create_token()["access_token"]
    started = time.perf_counter()
    assert api(sim, token).status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    assert requests.get(f"{sim.url}/_sim/health", timeout=TIMEOUT).status_code == 200
    assert time.perf_counter() - started < 0.25  # admin endpoints are not delayed
    started = time.perf_counter()
    responses = burst(sim, token, 8)
    elapsed = time.perf_counter() - started
    assert {r.status_code for r in responses} == {200}
    assert 0.3 <= elapsed < 1.2  # 8 x 0.3 s = 2.4 s if the sleeps were serialized by the lock


def test_latency_jitter_is_bounded_and_reproducible(make_sim: Any) -> None:
    sim = make_sim(latency_ms=50, latency_jitter_ms=200, fault_seed=99)
    with sim.state.lock:
        first = [sim.state.draw_latency() for _ in range(50)]
    assert all(0.05 <= delay <= 0.25 for delay in first)
    assert len(set(first)) > 40
    configure(sim, fault_seed=99)  # restarts the sequences
    with sim.state.lock:
        again = [sim.state.draw_latency() for _ in range(50)]
    assert again == first


# ----------------------------------------------------------------------------------------------- faults
def test_fault_rate_is_reproducible_with_a_fixed_seed(make_sim: Any) -> None:
    sim = make_sim(fault_rate=0.25, fault_seed=1234)
    token = sim.create_token()["access_token"]
    requests_count = 80

    def run() -> list[int]:
        statuses = []
        for _ in range(requests_count):
            response = api(sim, token)
            if response.status_code == 500:
                assert response.json() == ERROR_500
            statuses.append(response.status_code)
        return statuses

    first = run()
    # one uniform draw per /api/v1 request: below fault_rate -> 500
    rng = random.Random(1234)
    expected = [500 if rng.random() < 0.25 else 200 for _ in range(requests_count)]
    assert first == expected
    failures = first.count(500)
    assert 10 <= failures <= 30  # ~20 expected
    assert stats(sim)["faults_total"]["error"] == failures
    configure(sim, fault_seed=1234)
    assert run() == first
    configure(sim, fault_seed=4321)
    assert run() != first
    configure(sim, fault_rate=0.0)
    assert all(status == 200 for status in run()[:10])


def test_timeout_stalls_longer_than_the_client_waits(make_sim: Any) -> None:
    sim = make_sim(timeout_rate=1.0, timeout_stall_seconds=1.5)
    token = sim.create_token()["access_token"]
    started = time.perf_counter()
    with pytest.raises(requests.Timeout):
        api(sim, token, timeout=0.3)
    assert time.perf_counter() - started < 1.0
    configure(sim, timeout_rate=0.0, timeout_stall_seconds=0.4)
    assert api(sim, token).status_code == 200
    # a one-shot timeout rule stalls and then answers normally (a client with a long timeout just waits)
    rule = {"path_regex": "/api/v1/accounts$", "kind": "timeout"}
    assert requests.post(f"{sim.url}/_sim/faults", json=rule, timeout=TIMEOUT).status_code == 201
    started = time.perf_counter()
    slow = api(sim, token)
    assert slow.status_code == 200 and time.perf_counter() - started >= 0.4
    assert stats(sim)["faults_total"]["timeout"] == 2


def test_reset_closes_the_connection_without_a_response(make_sim: Any) -> None:
    sim = make_sim(reset_rate=1.0)
    token = sim.create_token()["access_token"]
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            api(sim, token)
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        session.get(f"{sim.url}/api/v1/accounts", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert requests.get(f"{sim.url}/_sim/health", timeout=TIMEOUT).status_code == 200  # not API: no faults
    configure(sim, reset_rate=0.0)
    assert api(sim, token).status_code == 200
    rule = {"path_regex": "/enrollments", "kind": "reset", "count": 1}
    assert requests.post(f"{sim.url}/_sim/faults", json=rule, timeout=TIMEOUT).status_code == 201
    with pytest.raises(requests.ConnectionError):
        api(sim, token, "/courses/101/enrollments")
    assert api(sim, token, "/courses/101/enrollments").status_code == 200
    snapshot = stats(sim)
    assert snapshot["faults_total"] == {"error": 0, "throttle": 0, "timeout": 0, "reset": 4}
    assert snapshot["by_route"]["GET /api/v1/accounts"] == 4


def test_one_shot_rules_take_precedence_over_random_faults(make_sim: Any) -> None:
    sim = make_sim(fault_rate=1.0)
    token = sim.create_token()["access_token"]
    rule = {"status": 503, "path_regex": "/api/v1/accounts", "count": 2}
    requests.post(f"{sim.url}/_sim/faults", json=rule, timeout=TIMEOUT)
    first, second, third = (api(sim, token) for _ in range(3))
    assert first.status_code == second.status_code == 503
    assert first.json()["errors"][0]["error_code"] == "service_unavailable"
    assert third.status_code == 500 and third.json() == ERROR_500
    assert stats(sim)["faults_total"]["error"] == 3
    bad = requests.post(f"{sim.url}/_sim/faults", json={"kind": "explode"}, timeout=TIMEOUT)
    assert bad.status_code == 400


# ----------------------------------------------------------------------------------------------- config
def test_config_endpoint_validates_and_applies_all_or_nothing(make_sim: Any) -> None:
    sim = make_sim()
    before = requests.get(f"{sim.url}/_sim/config", timeout=TIMEOUT).json()
    for body in (
        {"fault_rate": 1.5},
        {"fault_rate": 0.6, "reset_rate": 0.6},
        {"throttle": "yes"},
        {"throttle_style": "500"},
        {"cost_model": "free"},
        {"throttle_high_water": 900},  # above the maximum (800)
        {"latency_ms": -1},
        {"latency_ms": True},
        {"fault_seed": "x"},
        {"seed": 1},
        {"latency_ms": 5, "fault_rate": 2},
    ):
        response = requests.post(f"{sim.url}/_sim/config", json=body, timeout=TIMEOUT)
        assert response.status_code == 400, body
        assert "error" in response.json()
    assert requests.get(f"{sim.url}/_sim/config", timeout=TIMEOUT).json() == before
    after = configure(sim, throttle_high_water=700, throttle_maximum=900, latency_jitter_ms=5,
                      cost_model="stress")  # fmt: skip
    assert (after["throttle_high_water"], after["throttle_maximum"]) == (700.0, 900.0)
    assert after["cost_model"] == "stress"
    assert after["latency_jitter_ms"] == 5.0 and after["fault_seed"] is None
    with pytest.raises(ValueError, match="fault_rate"):
        SimulatorConfig(fault_rate=1.01)
    with pytest.raises(ValueError, match="throttle_style"):
        SimulatorConfig(throttle_style="500")
    with pytest.raises(ValueError, match="cost_model"):
        SimulatorConfig(cost_model="free")


def test_command_line_flags_build_the_config() -> None:
    assert config_from_args(parse_args([])) == SimulatorConfig()
    args = parse_args(
        ["--throttle", "--throttle-high-water", "300", "--throttle-maximum", "400",
         "--throttle-leak-per-second", "5", "--throttle-up-front-cost", "25", "--throttle-style", "429",
         "--request-cost-base", "2", "--request-cost-per-item", "0.5", "--canvas-cost", "stress",
         "--cpu-seconds-per-item", "0.001", "--latency-ms", "20",
         "--latency-jitter-ms", "10", "--fault-rate", "0.1", "--timeout-rate", "0.05", "--reset-rate", "0.02",
         "--timeout-stall-seconds", "3", "--fault-seed", "11"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.throttle and config.throttle_style == "429"
    assert (config.throttle_high_water, config.throttle_maximum) == (300.0, 400.0)
    assert (config.throttle_leak_per_second, config.throttle_up_front_cost) == (5.0, 25.0)
    assert (config.request_cost_base, config.request_cost_per_item) == (2.0, 0.5)
    assert (config.cost_model, config.cpu_seconds_per_item) == ("stress", 0.001)
    assert (config.latency_ms, config.latency_jitter_ms) == (20.0, 10.0)
    assert (config.fault_rate, config.timeout_rate, config.reset_rate) == (0.1, 0.05, 0.02)
    assert (config.timeout_stall_seconds, config.fault_seed) == (3.0, 11)
    with pytest.raises(ValueError, match="must be <= 1"):
        config_from_args(parse_args(["--fault-rate", "0.7", "--reset-rate", "0.7"]))

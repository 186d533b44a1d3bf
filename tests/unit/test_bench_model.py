"""The benchmark's pure pieces: the fair-queueing model and the throttle floor."""

import pytest

from rostersync_local.bench import canvas_rate_figures, throttle_floor_seconds
from rostersync_local.fairness import ModelSettings, mixed_tenant_sizes, simulate, spread
from rostersync_local.harness import percentile

THROTTLE = {
    "throttle": True,
    "cost_model": "stress",
    "request_cost_base": 1.0,
    "request_cost_per_item": 0.02,
    "throttle_high_water": 600.0,
    "throttle_leak_per_second": 10.0,
}


def test_every_course_of_every_tenant_finishes() -> None:
    sizes = [3, 40, 250]
    for fair in (False, True):
        outcomes = simulate(sizes, ModelSettings(workers=4), fair=fair)
        assert [outcome.remaining for outcome in outcomes] == [0, 0, 0]
        assert all(outcome.finished_at > outcome.planned_at for outcome in outcomes)


def test_one_tenant_at_its_cap_takes_courses_over_cap_times_course_seconds() -> None:
    settings = ModelSettings(workers=3, tenant_cap=3, course_seconds=1.0, course_seconds_sigma=0.01)
    (outcome,) = simulate([300], settings, fair=False)
    assert 95 < outcome.finished_at - outcome.planned_at < 105


def test_fair_queueing_lets_small_tenants_finish_sooner() -> None:
    sizes = mixed_tenant_sizes(100)
    settings = ModelSettings(workers=16)
    fifo = spread(simulate(sizes, settings, fair=False))
    fair = spread(simulate(sizes, settings, fair=True))
    assert fair["small_tenant_completion_seconds"]["p95"] < fifo["small_tenant_completion_seconds"]["p95"] / 2
    assert fifo["small_tenants"] == fair["small_tenants"] == 60


def test_throttle_floor_is_the_cost_above_the_high_water_mark_at_the_leak_rate() -> None:
    truth = {
        "courses": [{"id": 1, "workflow_state": "available"}, {"id": 2, "workflow_state": "unpublished"}],
        "sections": [{"course_id": 1}, {"course_id": 2}],
        "enrollments": [{"course_id": 1, "enrollment_state": "active"}] * 150
        + [{"course_id": 1, "enrollment_state": "deleted"}],
    }
    # courses: 1 page + 1 item; sections: 1 page + 1 item; enrollments: 2 pages + 150 items
    cost = (1 + 0.02) + (1 + 0.02) + (2 + 3.0)
    high_water = cost - 5.0
    assert throttle_floor_seconds(truth, {**THROTTLE, "throttle_high_water": high_water}) == pytest.approx(
        0.5
    )
    assert throttle_floor_seconds(truth, THROTTLE) == 0.0
    assert throttle_floor_seconds(truth, {**THROTTLE, "throttle": False}) == 0.0


def test_under_the_documented_model_a_page_costs_its_mean_latency_and_cpu() -> None:
    truth = {
        "courses": [{"id": 1, "workflow_state": "available"}],
        "sections": [{"course_id": 1}],
        "enrollments": [{"course_id": 1, "enrollment_state": "active"}] * 150,
    }
    documented = {**THROTTLE, "cost_model": "documented", "latency_ms": 50.0, "latency_jitter_ms": 20.0,
                  "cpu_seconds_per_item": 0.001, "throttle_high_water": 0.0}  # fmt: skip
    # 4 pages of 60 ms on average, 152 items of 1 ms, nothing below the high-water mark, leak 10
    assert throttle_floor_seconds(truth, documented) == pytest.approx((4 * 0.06 + 0.152) / 10)


def test_the_ceiling_is_the_in_flight_bound_over_latency_capped_by_leak_over_cost() -> None:
    config = {"cost_model": "documented", "throttle": True, "throttle_high_water": 600.0,
              "throttle_up_front_cost": 50.0, "throttle_leak_per_second": 10.0}  # fmt: skip
    stats = {"by_route": {"GET /api/v1/courses/:course_id/sections": 200}, "costed_requests": 200,
             "latency_seconds_total": 12.0, "request_cost_total": 13.0, "peak_in_flight": 9}  # fmt: skip
    figures = canvas_rate_figures(stats, config, wall_seconds=2.0)
    # 12 in flight / 0.06 s = 200 per second, capped by 10 / 0.065 = 153.8 per second
    assert figures["canvas_ceiling_requests_per_second"] == pytest.approx(153.8)
    assert figures["canvas_requests_per_second"] == 100.0
    assert figures["canvas_efficiency"] == pytest.approx(100 / (10 / 0.065), abs=0.001)
    assert figures["canvas_peak_in_flight"] == 9 and figures["canvas_cost_model"] == "documented"
    unthrottled = canvas_rate_figures(stats, {**config, "throttle": False}, wall_seconds=2.0)
    assert unthrottled["canvas_ceiling_requests_per_second"] == pytest.approx(200.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(100, -1, -1)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0

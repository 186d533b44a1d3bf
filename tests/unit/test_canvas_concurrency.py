"""The in-flight limit of a Canvas token: additive increase, multiplicative decrease."""

import pytest

from rostersync.canvas.concurrency import AimdLimit, AimdSettings

ROOMY = 400.0  # room for eight more pre-flight penalties
TIGHT = 60.0  # room for one


def grown(limit: AimdLimit, answers: int) -> AimdLimit:
    for _ in range(answers):
        limit.observe(ROOMY)
    return limit


def test_the_ceiling_is_canvas_high_water_over_pre_flight_minus_a_margin() -> None:
    assert AimdSettings().ceiling == 600 // 50 - 2
    assert AimdLimit(start=99).limit == 10
    assert AimdLimit(start=0).limit == 1


def answers_to_reach(limit: AimdLimit, target: int) -> int:
    answers = 0
    while limit.limit < target:
        limit.observe(ROOMY)
        answers += 1
    return answers


def test_roomy_answers_add_about_one_request_per_round_of_answers() -> None:
    limit = AimdLimit(start=3)
    grown(limit, 2)
    assert limit.limit == 3  # two answers of a round of three: not yet
    assert answers_to_reach(AimdLimit(start=3), 4) == 4  # 1/3 + 1/3.3 + 1/3.6 falls just short of 1
    assert answers_to_reach(AimdLimit(start=9), 10) == 10
    assert answers_to_reach(limit, 8) < 3 + 4 + 5 + 6 + 7 + 5  # rounds of 3..7 answers, with some slack
    grown(limit, 1000)
    assert limit.limit == AimdSettings().ceiling


def test_a_middling_remaining_holds_the_limit() -> None:
    limit = AimdLimit(start=6)
    for _ in range(50):
        limit.observe(120.0)  # between two and three pre-flight penalties of room
    assert limit.limit == 6


def test_a_tight_remaining_takes_a_quarter_off_once_per_round() -> None:
    limit = AimdLimit(start=8)
    limit.observe(TIGHT)
    assert limit.limit == 6
    for _ in range(7):  # the other answers of the requests sent before the decrease
        limit.observe(TIGHT)
    assert limit.limit == 6
    limit.observe(TIGHT)  # a new round still tight: down again
    assert limit.limit == 4


def test_a_throttled_answer_halves_the_limit_at_once_and_never_below_the_floor() -> None:
    limit = AimdLimit(start=10)
    limit.throttled()
    assert limit.limit == 5
    limit.throttled()  # no hold for a throttle: each refusal counts
    assert limit.limit == 2
    for _ in range(5):
        limit.throttled()
    assert limit.limit == 1
    grown(limit, 1)
    assert limit.limit == 2  # and it grows back


def test_adopting_another_holders_view_stays_within_bounds() -> None:
    limit = AimdLimit(start=3)
    limit.adopt(7)
    assert limit.limit == 7
    limit.adopt(50)
    assert limit.limit == 10


@pytest.mark.parametrize(
    "settings",
    [
        {"floor": 0},
        {"floor": 5, "ceiling": 4},
        {"shrink_factor": 1.0},
        {"throttle_factor": 0.9, "shrink_factor": 0.75},
        {"shrink_below_remaining": 200.0, "grow_at_or_above_remaining": 150.0},
    ],
)
def test_inconsistent_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        AimdSettings(**settings)  # type: ignore[arg-type]

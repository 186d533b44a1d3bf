"""Property-based fuzzing of the parsers that read outside input: live events, grade and course-list CSVs.

A parser may refuse its input, but only with its own clear error: an unexpected exception is a bug.
"""

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rostersync.events.parse import parse_event
from rostersync.grades.csvfile import GradeCsvError, parse_grades_csv
from rostersync.tenant_settings import parse_course_list_csv
from rostersync.tenants import TenantError

DOCUMENTED_EVENTS = sorted((Path(__file__).parents[1] / "fixtures" / "live_events").rglob("*.json"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


def assert_no_internal_error(raw: Any) -> None:
    parsed = parse_event(raw)
    assert parsed.status in {"ok", "ignored", "invalid"}
    assert not (parsed.reason or "").startswith("internal error"), parsed.reason


def test_there_are_documented_events_to_mutate() -> None:
    assert len(DOCUMENTED_EVENTS) >= 20


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200) | json_values)
def test_any_input_parses_or_is_refused_with_a_reason(raw: Any) -> None:
    assert_no_internal_error(raw if not isinstance(raw, (dict, list)) else json.dumps(raw))


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=3),
    value=json_values,
)
def test_a_documented_event_with_any_field_replaced_parses_or_is_refused(
    index: int, path: list[int], value: Any
) -> None:
    """Deep mutations: walk into a real event (Canvas or Caliper) and swap one value for anything."""
    document = json.loads(DOCUMENTED_EVENTS[index % len(DOCUMENTED_EVENTS)].read_text())
    node = document
    for step in path[:-1]:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys or not isinstance(node[keys[step % len(keys)]], (dict, list)):
            break
        node = node[keys[step % len(keys)]]
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if keys:
        node[keys[path[-1] % len(keys)]] = value
    assert_no_internal_error(document)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_a_grades_csv_parses_or_is_refused_with_its_own_error(text: str) -> None:
    with contextlib.suppress(GradeCsvError):
        parse_grades_csv(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_a_course_list_csv_parses_or_is_refused_with_its_own_error(text: str) -> None:
    try:
        references = parse_course_list_csv(text)
    except TenantError:
        return
    assert all(ref.isdigit() or ref.startswith("sis_course_id:") for ref in references)


@pytest.mark.parametrize("path", DOCUMENTED_EVENTS[:3], ids=lambda path: path.name)
def test_the_mutation_walk_starts_from_a_parseable_event(path: Path) -> None:
    assert parse_event(path.read_text()).status in {"ok", "ignored"}

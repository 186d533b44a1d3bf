"""The table's records against moto in-process: a table shaped like the template's RosterTable."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rostersync.models import HeldItem, HeldSync, HoldStatus, Tenant, TenantStatus
from rostersync.store.feed import FeedChange
from rostersync.store.keys import course_sk, tenant_pk
from rostersync.store.oauth_states import OAuthState
from rostersync.store.rosters import CourseWriteConflictError, StoredItem, roster_digest
from rostersync.store.table import RosterTable
from rostersync.store.tenants import TenantExistsError

TENANT = "t1"
COURSE = 101


def raw(table: RosterTable) -> Any:
    return table._table


def keys_changed(
    before: Mapping[str, StoredItem], after: Mapping[str, StoredItem], course: StoredItem | None
) -> list[FeedChange]:
    """A stand-in for the feed's describer: one change per sort key whose item differs."""
    return [
        FeedChange("changed", sk)
        for sk in sorted(before.keys() | after.keys())
        if before.get(sk) != after.get(sk)
    ]


def item(sk: str, data: str) -> StoredItem:
    return StoredItem(sk, data, hashlib.sha256(data.encode()).hexdigest())


# -- tenants -------------------------------------------------------------------------------------------
def test_a_tenant_is_created_once_and_listed_through_the_index(table: RosterTable) -> None:
    table.create_tenant(Tenant(tenant_id=TENANT, name="One"))
    with pytest.raises(TenantExistsError):
        table.create_tenant(Tenant(tenant_id=TENANT, name="Again"))
    table.create_tenant(Tenant(tenant_id="t2", name="Two"))

    assert [tenant.name for tenant in table.list_tenants()] == ["One", "Two"]
    table.mark_needs_reauthorization(TENANT, "token revoked")
    stored = table.get_tenant(TENANT)
    assert stored is not None and stored.status is TenantStatus.NEEDS_REAUTHORIZATION
    assert stored.status_reason == "token revoked"


# -- OAuth states --------------------------------------------------------------------------------------
def test_an_oauth_state_is_peeked_without_spending_it_and_spent_once(table: RosterTable) -> None:
    table.put_oauth_state(TENANT, "s1", ttl_seconds=600, started_by="admin")
    assert table.open_oauth_state(TENANT, "s1", "https://app/callback", "browser-a")
    assert not table.open_oauth_state(TENANT, "s1", "https://evil/callback", "browser-b")  # opens once

    peeked = table.peek_oauth_state(TENANT, "s1")
    assert peeked is not None
    assert (peeked.started_by, peeked.redirect_uri, peeked.browser_hash) == (
        "admin",
        "https://app/callback",
        "browser-a",
    )
    assert table.peek_oauth_state(TENANT, "s1") == peeked  # peeking spends nothing

    assert table.spend_oauth_state(peeked)
    assert not table.spend_oauth_state(peeked)
    assert table.peek_oauth_state(TENANT, "s1") is None


def test_an_oauth_state_bound_to_another_browser_or_expired_is_not_spent(table: RosterTable) -> None:
    table.put_oauth_state(TENANT, "s1", ttl_seconds=600, started_by="admin")
    table.open_oauth_state(TENANT, "s1", "https://app/callback", "browser-a")
    forged = OAuthState(TENANT, "s1", int(time.time()) + 600, "admin", True, None, "browser-b")
    assert not table.spend_oauth_state(forged)
    assert table.peek_oauth_state(TENANT, "s1") is not None

    table.put_oauth_state(TENANT, "old", ttl_seconds=-1, started_by="admin")
    assert table.peek_oauth_state(TENANT, "old") is None
    assert not table.open_oauth_state(TENANT, "old", "https://app/callback", "browser-a")


# -- leases --------------------------------------------------------------------------------------------
def test_the_refresh_lock_has_one_holder_until_released_or_its_lease_runs_out(table: RosterTable) -> None:
    assert not table.acquire_refresh_lock(TENANT, "a", lease_seconds=60)  # no tenant, no lock
    table.create_tenant(Tenant(tenant_id=TENANT, name="One"))

    assert table.acquire_refresh_lock(TENANT, "a", lease_seconds=60)
    assert not table.acquire_refresh_lock(TENANT, "b", lease_seconds=60)
    table.release_refresh_lock(TENANT, "b")  # not b's to release
    assert not table.acquire_refresh_lock(TENANT, "b", lease_seconds=60)
    table.release_refresh_lock(TENANT, "a")
    assert table.acquire_refresh_lock(TENANT, "b", lease_seconds=-5)  # a lease already run out
    assert table.acquire_refresh_lock(TENANT, "c", lease_seconds=60)


def test_a_cooldown_is_claimed_once_per_scope_until_it_ends(table: RosterTable) -> None:
    before = datetime.now(UTC)
    assert table.claim_cooldown(TENANT, "sync", seconds=300) is None
    ends = table.claim_cooldown(TENANT, "sync", seconds=300)
    assert ends is not None
    assert before + timedelta(seconds=298) <= ends <= datetime.now(UTC) + timedelta(seconds=300)
    assert table.claim_cooldown(TENANT, "course:7", seconds=300) is None  # another scope
    assert table.claim_cooldown("t2", "sync", seconds=300) is None  # another tenant

    assert table.claim_cooldown(TENANT, "short", seconds=0) is None
    assert table.claim_cooldown(TENANT, "short", seconds=0) is None  # the first one has ended


# -- holds ---------------------------------------------------------------------------------------------
def hold(course_id: int, **changes: Any) -> HeldSync:
    values: dict[str, Any] = {
        "tenant_id": TENANT,
        "course_id": course_id,
        "run_id": "r1",
        "fingerprint": f"f{course_id}",
        "student_drops": 6,
        "active_before": 10,
        "puts": [HeldItem(sk="USER#1", data="{}", content_hash="h")],
        "deletes": ["ENROLLMENT#1", "ENROLLMENT#2"],
    }
    return HeldSync(**(values | changes))


def test_holds_are_kept_per_course_and_decisions_listed_latest_first(table: RosterTable) -> None:
    table.put_hold(hold(1))
    table.put_hold(hold(2))
    replaced = hold(1, student_drops=7)
    table.put_hold(replaced)  # the course's hold is replaced

    assert table.get_hold(TENANT, 1) == replaced
    assert sorted((h.course_id, h.student_drops) for h in table.list_holds(TENANT)) == [(1, 7), (2, 6)]
    table.delete_hold(TENANT, 2)
    assert table.get_hold(TENANT, 2) is None
    assert [h.course_id for h in table.list_holds(TENANT)] == [1]

    first = datetime(2025, 1, 1, tzinfo=UTC)
    table.put_hold_decision(hold(1, status=HoldStatus.REJECTED, decided_by="ann", decided_at=first))
    table.put_hold_decision(
        hold(2, status=HoldStatus.APPROVED, decided_by="bob", decided_at=first + timedelta(hours=1))
    )
    decisions = table.list_hold_decisions(TENANT)
    assert [(d.course_id, d.decided_by, d.status) for d in decisions] == [
        (2, "bob", HoldStatus.APPROVED),
        (1, "ann", HoldStatus.REJECTED),
    ]
    assert all(d.puts == [] and d.deletes == [] for d in decisions)  # the decision keeps no roster items
    assert [h.course_id for h in table.list_holds(TENANT)] == [1]  # decisions are not current holds
    assert [d.course_id for d in table.list_hold_decisions(TENANT, limit=1)] == [2]


# -- course writes -------------------------------------------------------------------------------------
def test_write_course_commits_a_generation_and_refuses_a_stale_one(table: RosterTable) -> None:
    first = [item("SECTION#1", "s1"), item("USER#7", "u7"), item("ENROLLMENT#70", "e70")]
    table.write_course(
        TENANT,
        COURSE,
        item(course_sk(COURSE), "course"),
        first,
        [],
        expected_generation=0,
        describe_changes=keys_changed,
    )

    items, generation = table.course_snapshot(TENANT, COURSE)
    assert generation == 1 and items == {i.sk: i for i in first}
    row = table.course_row(TENANT, COURSE)
    assert row is not None and row.generation == 1 and row.roster_digest == roster_digest(first)
    assert row.course == item(course_sk(COURSE), "course")
    assert table.courses_of_user(TENANT, 7) == [COURSE]

    # A diff made against generation 0 after generation 1 was committed writes nothing.
    with pytest.raises(CourseWriteConflictError):
        table.write_course(
            TENANT,
            COURSE,
            None,
            [item("USER#8", "u8")],
            ["USER#7"],
            expected_generation=0,
            describe_changes=keys_changed,
        )
    assert table.course_snapshot(TENANT, COURSE) == (items, 1)
    assert table.courses_of_user(TENANT, 8) == []

    table.write_course(
        TENANT,
        COURSE,
        None,
        [item("USER#7", "u7 renamed")],
        ["ENROLLMENT#70"],
        expected_generation=1,
        describe_changes=keys_changed,
    )
    items, generation = table.course_snapshot(TENANT, COURSE)
    assert generation == 2
    assert items == {"SECTION#1": first[0], "USER#7": item("USER#7", "u7 renamed")}
    row = table.course_row(TENANT, COURSE)
    assert row is not None and row.roster_digest == roster_digest(items.values())
    stored = raw(table).query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"T#{TENANT}#C#{COURSE}"}
    )["Items"]
    assert sorted(i["sk"] for i in stored) == ["SECTION#1", "USER#7"]  # the tombstone went at the commit


def test_write_course_conflicts_while_another_writer_holds_the_lease(table: RosterTable) -> None:
    table.write_course(
        TENANT, COURSE, None, [item("USER#7", "u7")], [], expected_generation=0, describe_changes=keys_changed
    )
    raw(table).update_item(
        Key={"pk": tenant_pk(TENANT), "sk": course_sk(COURSE)},
        UpdateExpression="SET lease_holder = :holder, lease_until = :until",
        ExpressionAttributeValues={":holder": "other", ":until": int(time.time()) + 300},
    )
    with pytest.raises(CourseWriteConflictError):
        table.write_course(
            TENANT,
            COURSE,
            None,
            [item("USER#8", "u8")],
            [],
            expected_generation=1,
            describe_changes=keys_changed,
        )
    assert table.course_items(TENANT, COURSE) == {"USER#7": item("USER#7", "u7")}


def test_a_machine_client_maps_to_its_tenant_and_goes_with_it(table: RosterTable) -> None:
    from rostersync.models import ApiClient

    ours = ApiClient(client_id="c1", tenant_id=TENANT, name="Platform")
    theirs = ApiClient(client_id="c2", tenant_id="t2", name="Other platform")
    table.put_api_client(ours)
    table.put_api_client(theirs)
    assert table.api_client("c1") == ours and table.list_api_clients(TENANT) == [ours]
    table.delete_tenant(TENANT)
    assert table.api_client("c1") is None and table.api_client("c2") == theirs

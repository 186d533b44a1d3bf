"""A run closes when its last course is final: each course is counted once, whatever is redelivered."""

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from rostersync.models import RunStatus, SyncRun, SyncTrigger
from rostersync.store.table import RosterTable


@pytest.fixture
def table() -> Iterator[RosterTable]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in ("pk", "sk")],
            BillingMode="PAY_PER_REQUEST",
        )
        yield RosterTable("t", dynamodb)


def test_each_course_counts_once_into_its_run(table: RosterTable) -> None:
    table.put_run(SyncRun(tenant_id="a", run_id="r", trigger=SyncTrigger.MANUAL, status=RunStatus.RUNNING,
                          courses_total=2))  # fmt: skip
    first = table.count_final_course("a", "r", 101)
    assert first is not None and first.courses_final == 1
    assert table.count_final_course("a", "r", 101) is None  # a redelivered final outcome
    last = table.count_final_course("a", "r", 102)
    assert last is not None and (last.courses_final, last.courses_total) == (2, 2)


def test_a_course_of_an_unknown_run_counts_nowhere(table: RosterTable) -> None:
    assert table.count_final_course("a", "missing", 101) is None
    table.put_run(SyncRun(tenant_id="a", run_id="missing", trigger=SyncTrigger.MANUAL, courses_total=1))
    counted = table.count_final_course("a", "missing", 101)  # the failed attempt left no marker behind
    assert counted is not None and counted.courses_final == 1

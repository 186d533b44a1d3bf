"""Grade passback rows in the single table (batches, grades, assignment mappings: their keys are in
store/keys.py), and the grades queue."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from pydantic import ValidationError

from rostersync.models import (
    GradeBatchRecord,
    GradeEntry,
    GradeMessage,
    GradeState,
    GradeStatus,
    utc_now,
)
from rostersync.store.dynamo import is_conditional_failure, query_all
from rostersync.store.keys import (
    BATCH_SK,
    GRADE_BATCH_LISTING_PREFIX,
    GRADE_PREFIX,
    assignment_sk,
    grade_sk,
    grades_pk,
    tenant_pk,
)


@dataclass(frozen=True)
class AssignmentMapping:
    canvas_assignment_id: int | None  # None until a first creation finishes
    claimed_by: str | None  # set while a worker is creating (or re-creating) the Canvas assignment


INVALID_GRADE = "invalid_grade"
INVALID_GRADE_REASON = (
    "the stored grade is not valid (a score that was not a finite number was stored empty); "
    "push the grade again in a new batch"
)


@dataclass(frozen=True)
class StoredGrade:
    entry: GradeEntry | None  # None: stored by older code and invalid now (then the status is failed)
    status: GradeStatus


class GradeStore:
    def __init__(self, table_name: str, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)

    # -- batches ---------------------------------------------------------------------------------
    def put_batch(self, record: GradeBatchRecord, entries: Sequence[GradeEntry]) -> None:
        """The batch row and one pending row per grade (the batch row last: it marks the batch complete).

        The batch id must be new (submit_batch makes one): the grade rows are written before the batch row."""
        pk = grades_pk(record.tenant_id, record.batch_id)
        now = utc_now().isoformat()
        with self._table.batch_writer() as batch:
            for index, entry in enumerate(entries):
                batch.put_item(
                    Item={
                        "pk": pk,
                        "sk": grade_sk(index),
                        "entry": entry.model_dump_json(exclude_none=True),
                        "student": entry.student,
                        "state": GradeState.PENDING.value,
                        "updated_at": now,
                    }
                )
        self._table.put_item(
            Item={
                "pk": pk,
                "sk": BATCH_SK,
                "data": record.model_dump_json(exclude={"notes", "canvas_assignment_id"}),
                "notes": list(record.notes),
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        # Its entry in the tenant's list of batches, so a lost batch id can be found again.
        self._table.put_item(
            Item={
                "pk": tenant_pk(record.tenant_id),
                "sk": f"{GRADE_BATCH_LISTING_PREFIX}{record.batch_id}",
                "summary": record.model_dump_json(exclude={"notes", "canvas_assignment_id"}),
            }
        )

    def list_batches(self, tenant_id: str, limit: int = 50) -> list[GradeBatchRecord]:
        """The tenant's latest grade batches first (their grades' states: `batch_status`)."""
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(GRADE_BATCH_LISTING_PREFIX),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [GradeBatchRecord.model_validate_json(item["summary"]) for item in response["Items"]]

    def get_batch(self, tenant_id: str, batch_id: str) -> GradeBatchRecord | None:
        item = self._table.get_item(
            Key={"pk": grades_pk(tenant_id, batch_id), "sk": BATCH_SK}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        record = GradeBatchRecord.model_validate_json(item["data"])
        canvas_id = item.get("canvas_assignment_id")
        return record.model_copy(
            update={
                "notes": [str(note) for note in item.get("notes", [])],
                "canvas_assignment_id": int(canvas_id) if canvas_id is not None else None,
            }
        )

    def set_batch_assignment(self, tenant_id: str, batch_id: str, canvas_assignment_id: int) -> None:
        self._table.update_item(
            Key={"pk": grades_pk(tenant_id, batch_id), "sk": BATCH_SK},
            UpdateExpression="SET canvas_assignment_id = :id",
            ExpressionAttributeValues={":id": canvas_assignment_id},
        )

    def add_note(self, tenant_id: str, batch_id: str, note: str) -> None:
        self._table.update_item(
            Key={"pk": grades_pk(tenant_id, batch_id), "sk": BATCH_SK},
            UpdateExpression="SET notes = list_append(if_not_exists(notes, :empty), :note)",
            ExpressionAttributeValues={":empty": [], ":note": [note]},
        )

    # -- grades ----------------------------------------------------------------------------------
    def grades(self, tenant_id: str, batch_id: str) -> list[StoredGrade]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(grades_pk(tenant_id, batch_id))
            & Key("sk").begins_with(GRADE_PREFIX),
            ConsistentRead=True,
        )
        return [_stored_grade(item) for item in items]

    def set_status(self, tenant_id: str, batch_id: str, status: GradeStatus) -> None:
        values: dict[str, Any] = {
            ":state": status.state.value,
            ":updated_at": status.updated_at.isoformat(),
        }
        sets = ["#state = :state", "updated_at = :updated_at"]
        removes = []
        for name, value in (
            ("reason", status.reason),
            ("reason_code", status.reason_code),
            ("canvas_user_id", status.canvas_user_id),
        ):
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        self._table.update_item(
            Key={"pk": grades_pk(tenant_id, batch_id), "sk": grade_sk(status.index)},
            UpdateExpression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
        )

    # -- external assignment id -> Canvas assignment id -------------------------------------------
    def assignment_mapping(
        self, tenant_id: str, course_id: int, external_id: str
    ) -> AssignmentMapping | None:
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": assignment_sk(course_id, external_id)},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        canvas_id = item.get("canvas_assignment_id")
        claimed_by = item.get("claimed_by")
        return AssignmentMapping(
            canvas_assignment_id=int(canvas_id) if canvas_id is not None else None,
            claimed_by=str(claimed_by) if claimed_by is not None else None,
        )

    def claim_assignment(
        self,
        tenant_id: str,
        course_id: int,
        external_id: str,
        owner: str,
        *,
        replacing: int | None,
        stale_after: timedelta,
    ) -> bool:
        """Claim the creation of the Canvas assignment; False when another worker holds the claim or
        has already mapped it. `replacing` is the mapped id Canvas no longer has (None: none mapped).
        A claim older than `stale_after` (its worker died) can be taken over."""
        now = utc_now()
        free = "attribute_not_exists(claimed_by) AND " + (
            "attribute_not_exists(canvas_assignment_id)"
            if replacing is None
            else "canvas_assignment_id = :replacing"
        )
        values: dict[str, Any] = {
            ":owner": owner,
            ":now": now.isoformat(),
            ":stale": (now - stale_after).isoformat(),
        }
        if replacing is not None:
            values[":replacing"] = replacing
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": assignment_sk(course_id, external_id)},
                UpdateExpression="SET claimed_by = :owner, claimed_at = :now",
                ConditionExpression=f"({free}) OR claimed_at < :stale",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def remember_assignment(
        self, tenant_id: str, course_id: int, external_id: str, canvas_assignment_id: int, owner: str
    ) -> bool:
        """Map the assignment and end the claim, only while `owner` still holds it."""
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": assignment_sk(course_id, external_id)},
                UpdateExpression="SET canvas_assignment_id = :id, updated_at = :now "
                "REMOVE claimed_by, claimed_at",
                ConditionExpression="claimed_by = :owner",
                ExpressionAttributeValues={
                    ":id": canvas_assignment_id,
                    ":now": utc_now().isoformat(),
                    ":owner": owner,
                },
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def release_assignment_claim(self, tenant_id: str, course_id: int, external_id: str, owner: str) -> None:
        """Give up a claim (the creation failed) so that another worker need not wait for it to go stale."""
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": assignment_sk(course_id, external_id)},
                UpdateExpression="REMOVE claimed_by, claimed_at",
                ConditionExpression="claimed_by = :owner",
                ExpressionAttributeValues={":owner": owner},
            )
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return query_all(self._table, **kwargs)


def _stored_grade(item: dict[str, Any]) -> StoredGrade:
    index = int(str(item["sk"]).removeprefix(GRADE_PREFIX))
    canvas_user_id = item.get("canvas_user_id")
    status = GradeStatus(
        index=index,
        student=str(item["student"]),
        state=GradeState(item["state"]),
        reason=item.get("reason"),
        reason_code=item.get("reason_code"),
        canvas_user_id=int(canvas_user_id) if canvas_user_id is not None else None,
        updated_at=item["updated_at"],
    )
    try:
        return StoredGrade(entry=GradeEntry.model_validate_json(item["entry"]), status=status)
    except ValidationError:
        # Older code took a NaN or infinite score and stored it as null: every reader sees a failed grade
        # with its reason (never a pending one the worker would choke on, nor a 500).
        failed = status.model_copy(
            update={"state": GradeState.FAILED, "reason": INVALID_GRADE_REASON, "reason_code": INVALID_GRADE}
        )
        return StoredGrade(entry=None, status=failed)


class GradeQueueNotConfiguredError(Exception):
    pass


class GradeQueue:
    def __init__(self, queue_url: str, client: Any = None) -> None:
        self._url = queue_url
        self._client = client or boto3.client("sqs")

    def send(self, message: GradeMessage) -> None:
        if not self._url:
            raise GradeQueueNotConfiguredError("GRADES_QUEUE_URL is not set")
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=message.model_dump_json(exclude_none=True),
            MessageGroupId=message.tenant_id,  # fair queues keep one tenant from starving the others
        )

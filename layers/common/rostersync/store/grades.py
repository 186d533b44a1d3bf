"""Grade passback rows in the single table, and the grades queue.

Layout (pk / sk):
  T#<t>#GRADES#<batch>  BATCH                        the batch: course, assignment, Canvas id, notes
  T#<t>#GRADES#<batch>  GRADE#<index>                one grade (as submitted) and its state + reason
  T#<t>                 ASSIGNMENT#<course>#<ext id>  our assignment id -> the Canvas assignment id
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key

from rostersync.models import (
    GradeBatchRecord,
    GradeEntry,
    GradeMessage,
    GradeState,
    GradeStatus,
    utc_now,
)
from rostersync.services import Services
from rostersync.store.table import query_all, tenant_pk

BATCH_SK = "BATCH"
GRADE_PREFIX = "GRADE#"


def grades_pk(tenant_id: str, batch_id: str) -> str:
    return f"T#{tenant_id}#GRADES#{batch_id}"


def grade_sk(index: int) -> str:
    return f"{GRADE_PREFIX}{index:06d}"


def assignment_sk(course_id: int, external_id: str) -> str:
    return f"ASSIGNMENT#{course_id}#{external_id}"


@dataclass(frozen=True)
class StoredGrade:
    entry: GradeEntry
    status: GradeStatus


class GradeStore:
    def __init__(self, table_name: str, resource: Any = None) -> None:
        self._table = (resource or boto3.resource("dynamodb")).Table(table_name)

    # -- batches ---------------------------------------------------------------------------------
    def put_batch(self, record: GradeBatchRecord, entries: Sequence[GradeEntry]) -> None:
        """The batch row and one pending row per grade (the batch row last: it marks the batch complete)."""
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
        for name, value in (("reason", status.reason), ("canvas_user_id", status.canvas_user_id)):
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
    def assignment_id(self, tenant_id: str, course_id: int, external_id: str) -> int | None:
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": assignment_sk(course_id, external_id)},
            ConsistentRead=True,
        ).get("Item")
        return int(item["canvas_assignment_id"]) if item else None

    def remember_assignment(
        self, tenant_id: str, course_id: int, external_id: str, canvas_assignment_id: int
    ) -> None:
        self._table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": assignment_sk(course_id, external_id),
                "canvas_assignment_id": canvas_assignment_id,
                "updated_at": utc_now().isoformat(),
            }
        )

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return query_all(self._table, **kwargs)


def _stored_grade(item: dict[str, Any]) -> StoredGrade:
    index = int(str(item["sk"]).removeprefix(GRADE_PREFIX))
    canvas_user_id = item.get("canvas_user_id")
    return StoredGrade(
        entry=GradeEntry.model_validate_json(item["entry"]),
        status=GradeStatus(
            index=index,
            student=str(item["student"]),
            state=GradeState(item["state"]),
            reason=item.get("reason"),
            canvas_user_id=int(canvas_user_id) if canvas_user_id is not None else None,
            updated_at=item["updated_at"],
        ),
    )


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


def grade_store_for(services: Services) -> GradeStore:
    return GradeStore(services.settings.table_name)


def grade_queue_for(services: Services) -> GradeQueue:
    return GradeQueue(services.settings.grades_queue_url)

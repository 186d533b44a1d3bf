"""Sync runs: the run row (pk T#<t>, sk RUN#<run>), and under the run's own partition each course's
result, the courses still pending and the sync errors found."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from rostersync.models import CourseOutcome, CourseResult, RunStatus, SyncError, SyncRun
from rostersync.store.dynamo import TableRecords, is_conditional_failure, strip_keys, without_none
from rostersync.store.keys import (
    COURSE_PREFIX,
    ERROR_PREFIX,
    RUN_PREFIX,
    course_sk,
    error_sk,
    pending_pk,
    run_pk,
    run_sk,
    tenant_pk,
)

# A run's pending courses outlive any run (a crashed planner's markers go with DynamoDB's TTL).
PENDING_COURSE_TTL_SECONDS = 7 * 24 * 3600


class RunRecords(TableRecords):
    def put_run(self, run: SyncRun) -> None:
        self._table.put_item(
            Item={
                "pk": tenant_pk(run.tenant_id),
                "sk": run_sk(run.run_id),
                **without_none(run.model_dump(mode="json")),
            }
        )

    def get_run(self, tenant_id: str, run_id: str) -> SyncRun | None:
        item = self._table.get_item(
            Key={"pk": tenant_pk(tenant_id), "sk": run_sk(run_id)}, ConsistentRead=True
        ).get("Item")
        return SyncRun.model_validate(strip_keys(item)) if item else None

    def list_runs(self, tenant_id: str, limit: int = 20) -> list[SyncRun]:
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(RUN_PREFIX),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [SyncRun.model_validate(strip_keys(item)) for item in response.get("Items", [])]

    def finish_run(self, tenant_id: str, run_id: str, status: RunStatus, finished_at: datetime) -> bool:
        """Close a running run once; False when another worker closed it first."""
        try:
            self._table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": run_sk(run_id)},
                UpdateExpression="SET #status = :status, finished_at = :finished",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": status.value,
                    ":finished": finished_at.isoformat(),
                    ":running": RunStatus.RUNNING.value,
                },
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    # -- course results ------------------------------------------------------------------------
    def put_course_result(self, result: CourseResult) -> bool:
        """Record a course's outcome; a success already recorded is never overwritten by a redelivery."""
        item = {
            "pk": run_pk(result.tenant_id, result.run_id),
            "sk": course_sk(result.course_id),
            **without_none(result.model_dump(mode="json")),
        }
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR outcome <> :succeeded",
                ExpressionAttributeValues={":succeeded": CourseOutcome.SUCCEEDED.value},
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def list_course_results(self, tenant_id: str, run_id: str) -> list[CourseResult]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(run_pk(tenant_id, run_id))
            & Key("sk").begins_with(COURSE_PREFIX),
            ConsistentRead=True,
        )
        return [CourseResult.model_validate(strip_keys(item)) for item in items]

    # -- pending courses -----------------------------------------------------------------------
    # A run is done when its last pending course is cleared: each check reads at most one item, where
    # counting the results would read the whole run from every course (quadratic in the run's size).
    def put_pending_courses(self, tenant_id: str, run_id: str, course_ids: Iterable[int]) -> None:
        pk, expires_at = pending_pk(tenant_id, run_id), int(time.time()) + PENDING_COURSE_TTL_SECONDS
        with self._table.batch_writer() as batch:
            for course_id in course_ids:
                batch.put_item(Item={"pk": pk, "sk": course_sk(course_id), "expires_at": expires_at})

    def clear_pending_course(self, tenant_id: str, run_id: str, course_id: int) -> None:
        self._table.delete_item(Key={"pk": pending_pk(tenant_id, run_id), "sk": course_sk(course_id)})

    def record_course_results(self, results: Sequence[CourseResult]) -> None:
        """Record courses' outcomes (each conditional, as put_course_result), then clear the final ones'
        pending markers together: a marker goes only after its result, so whoever sees none left sees
        every result."""
        for result in results:
            self.put_course_result(result)
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for result in results:
                if result.is_final:
                    batch.delete_item(
                        Key={
                            "pk": pending_pk(result.tenant_id, result.run_id),
                            "sk": course_sk(result.course_id),
                        }
                    )

    def has_pending_courses(self, tenant_id: str, run_id: str) -> bool:
        response = self._table.query(
            KeyConditionExpression=Key("pk").eq(pending_pk(tenant_id, run_id)),
            ConsistentRead=True,
            Limit=1,
        )
        return bool(response.get("Items"))

    # -- sync errors ---------------------------------------------------------------------------
    def put_sync_errors(self, errors: Iterable[SyncError]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for error in errors:
                message_digest = hashlib.sha256(error.message.encode()).hexdigest()[:8]
                batch.put_item(
                    Item={
                        "pk": run_pk(error.tenant_id, error.run_id),
                        "sk": error_sk(error.course_id, error.user_id, error.code, message_digest),
                        **without_none(error.model_dump(mode="json")),
                    }
                )

    def list_sync_errors(self, tenant_id: str, run_id: str) -> list[SyncError]:
        items = self._query(
            KeyConditionExpression=Key("pk").eq(run_pk(tenant_id, run_id))
            & Key("sk").begins_with(ERROR_PREFIX)
        )
        return [SyncError.model_validate(strip_keys(item)) for item in items]

import json

import pytest

from rostersync.models import ChangeCounts, CourseOutcome, CourseResult
from rostersync.observability import publish_course_metrics


def test_course_metrics_are_emitted_per_tenant_and_per_service(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "rostersync")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    result = CourseResult(
        tenant_id="t1",
        run_id="r1",
        course_id=101,
        outcome=CourseOutcome.FAILED,
        changes=ChangeCounts(created=2, updated=1, dropped=1),
        canvas_throttled=3,
        canvas_requests=9,
    )
    publish_course_metrics(result)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [doc.get("tenant") or doc.get("service") for doc in documents] == ["t1", "rostersync"]
    for document in documents:
        assert document["CourseSyncFailed"] == [1.0]
        assert document["RosterChanges"] == [4.0]
        assert document["CanvasThrottled"] == [3.0]
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "rostersync"

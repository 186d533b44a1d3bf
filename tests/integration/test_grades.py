"""Grade passback (issue 7) against an in-process simulator, processing the queue's messages directly."""

import argparse
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from rostersync.canvas.errors import CanvasNotFoundError
from rostersync.canvas.models import CanvasCourse, LiveAssessmentResult
from rostersync.canvas.scopes import GET_SUBMISSION
from rostersync.connection import canvas_client_for
from rostersync.grades.assignments import ensure_assignment
from rostersync.grades.batches import RetryOutcome, batch_status, not_enrolled, retry_failed, submit_batch
from rostersync.grades.live_results import live_assessment_results
from rostersync.grades.passback import course_students, process_batch
from rostersync.grades.verify import Check, VerifyNotPossibleError, verify_batch
from rostersync.models import GradeAssignment, GradeBatch, GradeBatchRecord, GradeEntry, GradeMessage, Tenant
from rostersync.services import Services
from rostersync.store.grades import AssignmentMapping, GradeStore
from rostersync.sync.course import sync_course
from rostersync.tenants import create_tenant
from rostersync_cli.grades_cli import GradesCliError, add_grades_commands
from rostersync_local.canvas_sim import RunningSimulator, SimulatorConfig, serve
from tests.integration.conftest import connect, message

pytestmark = pytest.mark.integration

PUT_ROUTE = "PUT /api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id"
POST_ROUTE = "POST /api/v1/courses/:course_id/assignments"


@dataclass(frozen=True)
class Grading:
    services: Services
    tenant: Tenant
    sim: RunningSimulator
    students: dict[int, dict[str, int]]  # course -> identifier -> Canvas user id (the stored roster)

    def push(self, course_id: int, external_id: str, grades: list[GradeEntry]) -> str:
        batch = GradeBatch(
            tenant_id=self.tenant.tenant_id,
            course_id=course_id,
            assignment=GradeAssignment(
                external_id=external_id, name=f"Quiz {external_id}", points_possible=100
            ),
            grades=grades,
        )
        batch_id = submit_batch(self.services, self.tenant.tenant_id, batch)
        self.process_queue()
        return batch_id

    def process_queue(self) -> list[GradeMessage]:
        """Receive what submit/retry sent and process it, as the function would."""
        sqs = boto3.client("sqs")
        url = self.services.settings.grades_queue_url
        processed: list[GradeMessage] = []
        while True:
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not received:
                return processed
            for item in received:
                grade_message = GradeMessage.model_validate_json(item["Body"])
                process_batch(self.services, grade_message)
                processed.append(grade_message)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=item["ReceiptHandle"])

    def status(self, batch_id: str) -> dict[str, object]:
        return batch_status(self.services, self.tenant.tenant_id, batch_id)

    def puts(self) -> int:
        routes = requests.get(f"{self.sim.url}/_sim/stats", timeout=10).json()["by_route"]
        return int(routes.get(PUT_ROUTE, 0))

    def submission(self, course_id: int, assignment_id: int, user_id: int) -> dict[str, object]:
        client = canvas_client_for(self.services, self.tenant)
        found: dict[str, object] = client.get_one(
            GET_SUBMISSION, course_id=course_id, assignment_id=assignment_id, user_id=user_id
        )
        return found


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with serve(SimulatorConfig(seed=31, courses=12, reference_year=2026)) as running:
        yield running


@pytest.fixture(scope="module")
def grading(services: Services, sim: RunningSimulator) -> Grading:
    queue_url = boto3.client("sqs").get_queue_url(QueueName="conn-test-GradesQueue")["QueueUrl"]
    settings = services.settings.model_copy(update={"grades_queue_url": queue_url})
    with_queue = dataclasses.replace(services, settings=settings)
    tenant = connect(with_queue, sim)
    students: dict[int, dict[str, int]] = {}
    for course in sim.state.institution.courses:
        if course.db_state != "available":
            continue
        canvas_course = CanvasCourse(
            id=course.id, name=course.name, workflow_state="available", sis_course_id=course.sis_course_id
        )
        sync_course(with_queue, message(tenant, canvas_course), attempt=1)
        students[course.id] = course_students(with_queue, tenant, course.id)
    return Grading(with_queue, tenant, sim, students)


def _counts(status: dict[str, object]) -> dict[str, int]:
    counts = status["counts"]
    assert isinstance(counts, dict)
    return counts


def _grades(status: dict[str, object]) -> list[dict[str, object]]:
    grades = status["grades"]
    assert isinstance(grades, list)
    return grades


def test_two_hundred_grades_arrive_once_and_only_changes_are_sent_again(grading: Grading) -> None:
    courses = sorted(grading.students, key=lambda course: -len(grading.students[course]))
    plan: dict[int, list[GradeEntry]] = {}
    total = 0
    for course_id in courses:
        take = min(len(grading.students[course_id]), 200 - total)
        identifiers = sorted(grading.students[course_id])[:take]
        plan[course_id] = [GradeEntry(student=s, score=(i * 7) % 101) for i, s in enumerate(identifiers)]
        total += take
        if total == 200:
            break
    assert total == 200

    puts_before = grading.puts()
    batches = {course_id: grading.push(course_id, "final", grades) for course_id, grades in plan.items()}
    assert grading.puts() - puts_before == 200
    for course_id, batch_id in batches.items():
        status = grading.status(batch_id)
        assert _counts(status)["sent"] == len(plan[course_id]), status
        assignment_id = status["canvas_assignment_id"]
        assert isinstance(assignment_id, int)
        for entry in plan[course_id]:
            user_id = grading.students[course_id][entry.student]
            submission = grading.submission(course_id, assignment_id, user_id)
            assert submission["score"] == entry.score

    # The same grades again (a new batch), and a duplicate delivery of a processed message: no PUT.
    puts_before = grading.puts()
    again = {course_id: grading.push(course_id, "final", grades) for course_id, grades in plan.items()}
    for course_id, grades in plan.items():
        process_batch(
            grading.services, GradeMessage(tenant_id=grading.tenant.tenant_id, batch_id=again[course_id])
        )
        process_batch(
            grading.services, GradeMessage(tenant_id=grading.tenant.tenant_id, batch_id=batches[course_id])
        )
        counts = _counts(grading.status(again[course_id]))
        assert counts["unchanged"] == len(grades) and counts["sent"] == 0
    assert grading.puts() - puts_before == 0

    # Five changed grades: exactly five PUTs.
    course_id = courses[0]
    changed = [
        entry.model_copy(update={"score": (entry.score or 0) + 1}) if index < 5 else entry
        for index, entry in enumerate(plan[course_id])
    ]
    puts_before = grading.puts()
    batch_id = grading.push(course_id, "final", changed)
    assert grading.puts() - puts_before == 5
    assert _counts(grading.status(batch_id)) == {
        "pending": 0,
        "sent": 5,
        "unchanged": len(changed) - 5,
        "failed": 0,
    }


def test_a_deleted_assignment_is_created_again_and_reported(grading: Grading) -> None:
    course_id = sorted(grading.students)[1]
    students = sorted(grading.students[course_id])[:3]
    first = grading.push(course_id, "midterm", [GradeEntry(student=s, score=80) for s in students])
    old_id = grading.status(first)["canvas_assignment_id"]
    assert isinstance(old_id, int)
    with grading.sim.state.lock:
        del grading.sim.state.assignments[old_id]

    second = grading.push(course_id, "midterm", [GradeEntry(student=s, score=80) for s in students])
    status = grading.status(second)
    new_id = status["canvas_assignment_id"]
    assert isinstance(new_id, int) and new_id != old_id
    notes = status["notes"]
    assert isinstance(notes, list) and len(notes) == 1 and "created it again" in notes[0], notes
    assert _counts(status)["sent"] == 3
    assert grading.submission(course_id, new_id, grading.students[course_id][students[0]])["score"] == 80


def test_a_dropped_student_fails_with_a_reason_and_the_rest_are_sent(grading: Grading) -> None:
    course_id = sorted(grading.students)[2]
    students = sorted(grading.students[course_id])[:4]
    dropped_id = grading.students[course_id][students[0]]
    institution = grading.sim.state.institution
    with grading.sim.state.lock:
        for enrollment in institution.enrollments_by_course[course_id]:
            if enrollment.user_id == dropped_id:
                enrollment.state = "deleted"
        institution.reindex()
    course = institution.courses_by_id[course_id]
    canvas_course = CanvasCourse(
        id=course.id, name=course.name, workflow_state="available", sis_course_id=course.sis_course_id
    )
    sync_course(grading.services, message(grading.tenant, canvas_course), attempt=1)

    grades = [GradeEntry(student=s, grade="B") for s in students] + [GradeEntry(student="nobody", score=1)]
    status = grading.status(grading.push(course_id, "essay", grades))
    by_student = {grade["student"]: grade for grade in _grades(status)}
    assert by_student[students[0]]["state"] == "failed"
    assert by_student[students[0]]["reason"] == not_enrolled("sis_user_id")
    assert (
        by_student["nobody"]["reason"]
        == "no enrolled student with this sis_user_id (the tenant's user identifier field)"
    )
    assert [by_student[s]["state"] for s in students[1:]] == ["sent"] * 3


def test_an_invalid_grade_fails_with_canvas_message_and_retry_resends_only_failures(grading: Grading) -> None:
    course_id = sorted(grading.students)[3]
    students = sorted(grading.students[course_id])[:4]
    grades = [
        GradeEntry(student=students[0], grade="banana"),
        GradeEntry(student=students[1], score=90, comment="Well argued."),
        GradeEntry(student=students[2], excused=True),
        GradeEntry(student=students[3], grade="A-"),
    ]
    batch_id = grading.push(course_id, "lab", grades)
    status = grading.status(batch_id)
    by_student = {grade["student"]: grade for grade in _grades(status)}
    assert by_student[students[0]]["state"] == "failed"
    assert "Invalid grade value 'banana'" in str(by_student[students[0]]["reason"])
    assert [by_student[s]["state"] for s in students[1:]] == ["sent"] * 3

    puts_before = grading.puts()
    assert retry_failed(grading.services, grading.tenant.tenant_id, batch_id) == RetryOutcome(1, {})
    processed = grading.process_queue()
    assert [m.indexes for m in processed] == [[0]]
    assert grading.puts() - puts_before == 1
    assert _counts(grading.status(batch_id))["failed"] == 1

    # Comment and excused already in Canvas: nothing to send for the same grades.
    puts_before = grading.puts()
    status = grading.status(grading.push(course_id, "lab", grades[1:]))
    assert _counts(status)["unchanged"] == 3
    assert grading.puts() - puts_before == 0


GET_ROUTE = "GET /api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id"


def _routes(grading: Grading) -> dict[str, int]:
    routes: dict[str, int] = requests.get(f"{grading.sim.url}/_sim/stats", timeout=10).json()["by_route"]
    return routes


def _verify_cli(grading: Grading, batch_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_grades_commands(parser.add_subparsers(), lambda _: grading.services)
    arguments = parser.parse_args(["grades", "verify", batch_id, "--tenant", grading.tenant.tenant_id])
    try:
        arguments.handler(arguments)
    finally:
        printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return printed


def test_verify_reads_canvas_back_and_names_what_differs_or_is_missing(
    grading: Grading, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = sorted(grading.students)[4]
    students = sorted(grading.students[course_id])[:4]
    grades = [
        GradeEntry(student=students[0], score=70, comment="Solid work."),
        GradeEntry(student=students[1], grade="B"),
        GradeEntry(student=students[2], excused=True),
        GradeEntry(student=students[3], score=55),
        GradeEntry(student="nobody", score=1),
    ]
    batch_id = grading.push(course_id, "verify", grades)
    verified = verify_batch(grading.services, grading.tenant.tenant_id, batch_id)
    assert verified.counts == {"matches": 4, "differs": 0, "missing": 0, "not_sent": 1}
    # "nobody" was never sent: the batch is not all in Canvas, and the CLI exits 1 saying so.
    assert not verified.all_match
    with pytest.raises(GradesCliError, match="1 were never sent"):
        _verify_cli(grading, batch_id, capsys)
    # A resend cannot enroll "nobody": retry queues nothing and says why.
    assert retry_failed(grading.services, grading.tenant.tenant_id, batch_id) == RetryOutcome(
        0, {"not_enrolled": 1}
    )

    # In Canvas a teacher changes one score and clears another grade.
    assignment_id = verified.canvas_assignment_id
    assert isinstance(assignment_id, int)
    with grading.sim.state.lock:
        changed = grading.sim.state.submission(assignment_id, grading.students[course_id][students[1]])
        changed.grade, changed.score = "C", 74.0
        cleared = grading.sim.state.submission(assignment_id, grading.students[course_id][students[3]])
        cleared.grade, cleared.score, cleared.workflow_state = None, None, "unsubmitted"

    with pytest.raises(GradesCliError, match="1 grades differ and 1 are missing"):
        _verify_cli(grading, batch_id, capsys)
    verified = verify_batch(grading.services, grading.tenant.tenant_id, batch_id)
    by_student = {grade.student: grade for grade in verified.grades}
    assert [by_student[s].check for s in students] == [
        Check.MATCHES,
        Check.DIFFERS,
        Check.MATCHES,
        Check.MISSING,
    ]
    differs = by_student[students[1]]
    assert differs.differs_in == ["grade"]
    assert differs.canvas is not None and (differs.canvas.grade, differs.canvas.score) == ("C", 74.0)
    assert differs.sent == {"grade": "B", "excused": False}
    commented = by_student[students[0]].canvas
    assert commented is not None and commented.comments == ["Solid work."]


def _set_course_state(grading: Grading, course_id: int, db_state: str) -> str:
    with grading.sim.state.lock:
        course = grading.sim.state.institution.courses_by_id[course_id]
        previous, course.db_state = course.db_state, db_state
    return previous


@pytest.mark.parametrize(
    ("db_state", "code", "words", "puts"),
    [
        # Canvas takes a new assignment in an unpublished course, and refuses the first PUT of each batch.
        ("claimed", "course_unpublished", "is unpublished", 2),
        # A concluded course refuses the PUT of the first batch and the new assignment of the second.
        ("completed", "course_concluded", "is concluded", 1),
    ],
)
def test_an_unpublished_or_concluded_course_fails_every_grade_with_its_reason(
    grading: Grading, db_state: str, code: str, words: str, puts: int
) -> None:
    course_id = sorted(grading.students)[5]
    students = sorted(grading.students[course_id])[:3]
    grades = [GradeEntry(student=s, score=60) for s in students]
    # The assignment exists (with another score) before the course closes.
    grading.push(course_id, f"closed-{db_state}", [GradeEntry(student=students[0], score=1)])
    previous = _set_course_state(grading, course_id, db_state)
    try:
        puts_before = grading.puts()
        for external_id in (f"closed-{db_state}", f"new-{db_state}"):
            status = grading.status(grading.push(course_id, external_id, grades))
            assert _counts(status)["failed"] == 3, _grades(status)
            for grade in _grades(status):
                assert grade["reason_code"] == code
                assert words in str(grade["reason"]) and str(course_id) in str(grade["reason"])
        # One refused PUT per batch tells it; the other grades are not tried.
        assert grading.puts() - puts_before == puts
    finally:
        _set_course_state(grading, course_id, previous)


def test_two_batches_creating_one_new_assignment_at_once_create_it_once(grading: Grading) -> None:
    course_id = sorted(grading.students)[6]
    both_read = threading.Barrier(2, timeout=30)
    waited = threading.local()

    class SimultaneousStore(GradeStore):
        def claim_assignment(self, *args: Any, **kwargs: Any) -> bool:
            if not getattr(waited, "once", False):  # both workers found no mapping: both claim at once
                waited.once = True
                both_read.wait()
            return super().claim_assignment(*args, **kwargs)

    store = SimultaneousStore(grading.services.settings.table_name)
    records = [
        GradeBatchRecord(
            tenant_id=grading.tenant.tenant_id,
            batch_id=f"race-{n}",
            course_id=course_id,
            assignment=GradeAssignment(external_id="race", name="Quiz race", points_possible=10),
            size=1,
        )
        for n in range(2)
    ]
    posts_before = _routes(grading).get(POST_ROUTE, 0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(
                lambda record: ensure_assignment(
                    canvas_client_for(grading.services, grading.tenant), store, record, sleep=time.sleep
                ),
                records,
            )
        )
    assert _routes(grading).get(POST_ROUTE, 0) - posts_before == 1
    assert results[0] == results[1] and results[0][1] is None
    mapping = store.assignment_mapping(grading.tenant.tenant_id, course_id, "race")
    assert mapping == AssignmentMapping(canvas_assignment_id=results[0][0], claimed_by=None)
    with grading.sim.state.lock:
        marked = [
            a.id for a in grading.sim.state.assignments.values() if a.integration_id == "rostersync:race"
        ]
    assert marked == [results[0][0]]


def test_a_grade_put_answered_500_is_read_back_before_it_is_sent_again(grading: Grading) -> None:
    course_id = sorted(grading.students)[7]
    student = sorted(grading.students[course_id])[0]
    requests.post(
        f"{grading.sim.url}/_sim/faults",
        json={"status": 500, "path_regex": "/submissions/", "method": "PUT", "count": 1},
        timeout=10,
    ).raise_for_status()
    before = _routes(grading)
    status = grading.status(
        grading.push(course_id, "flaky", [GradeEntry(student=student, score=9, comment="Hi")])
    )
    after = _routes(grading)
    assert _counts(status)["sent"] == 1
    assert after[PUT_ROUTE] - before.get(PUT_ROUTE, 0) == 2  # the refused one, then one more
    assert after[GET_ROUTE] - before.get(GET_ROUTE, 0) == 2  # read before each
    assignment_id = status["canvas_assignment_id"]
    assert isinstance(assignment_id, int)
    with grading.sim.state.lock:
        submission = grading.sim.state.submission(assignment_id, grading.students[course_id][student])
        assert [comment["comment"] for comment in submission.comments] == ["Hi"]
        assert submission.score == 9


LIVE_RESULTS_ROUTE = "GET /api/v1/courses/:course_id/live_assessments/:assessment_id/results"


def _as_canvas_shows(result: LiveAssessmentResult) -> dict[str, Any]:
    links = result.links
    assert result.assessed_at is not None
    return {
        "id": result.id,
        "passed": result.passed,
        "assessed_at": result.assessed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": {
            "user": str(links.user),
            "assessor": str(links.assessor),
            "assessment": str(links.assessment),
        },
    }


def test_live_assessment_results_are_read_back_whole_across_pages_and_per_user(
    grading: Grading, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = requests.get(f"{grading.sim.url}/_sim/ground_truth", timeout=10).json()["live_assessments"]
    seeded = max(truth, key=lambda assessment: len(assessment["results"]))
    course_id, assessment_id = seeded["course_id"], seeded["id"]
    tenant_id = grading.tenant.tenant_id
    config = grading.sim.state.config
    with grading.sim.state.lock:
        saved, config.max_per_page = config.max_per_page, 7  # the client asks for 100; Canvas caps it
    try:
        before = _routes(grading).get(LIVE_RESULTS_ROUTE, 0)
        results = live_assessment_results(grading.services, tenant_id, course_id, assessment_id)
        pages = _routes(grading)[LIVE_RESULTS_ROUTE] - before
    finally:
        with grading.sim.state.lock:
            config.max_per_page = saved
    assert [_as_canvas_shows(result) for result in results] == seeded["results"]
    assert pages == -(-len(seeded["results"]) // 7) >= 4

    per_user: dict[str, list[dict[str, Any]]] = {}
    for result in seeded["results"]:
        per_user.setdefault(result["links"]["user"], []).append(result)
    user = max(per_user, key=lambda user_id: len(per_user[user_id]))  # one assessed twice, when there is
    mine = live_assessment_results(grading.services, tenant_id, course_id, assessment_id, int(user))
    assert [_as_canvas_shows(result) for result in mine] == per_user[user]
    unassessed = next(
        user_id for user_id in grading.students[course_id].values() if str(user_id) not in per_user
    )
    assert live_assessment_results(grading.services, tenant_id, course_id, assessment_id, unassessed) == []

    parser = argparse.ArgumentParser()
    add_grades_commands(parser.add_subparsers(), lambda _: grading.services)
    command = ["grades", "live-results", "--tenant", tenant_id, "--course", str(course_id)]
    arguments = parser.parse_args([*command, "--assessment", str(assessment_id), "--user", user])
    arguments.handler(arguments)
    printed = json.loads(capsys.readouterr().out)
    assert (printed["course_id"], printed["assessment_id"]) == (course_id, assessment_id)
    assert [result["id"] for result in printed["results"]] == [result["id"] for result in per_user[user]]
    elsewhere = next(a for a in truth if a["course_id"] != course_id)["id"]
    with pytest.raises(CanvasNotFoundError):
        live_assessment_results(grading.services, tenant_id, course_id, elsewhere)
    arguments = parser.parse_args([*command, "--assessment", "999999"])
    with pytest.raises(GradesCliError, match="no live assessment 999999"):
        arguments.handler(arguments)

    pending = create_tenant(
        grading.services,
        name="Not yet authorized",
        canvas_url=grading.sim.url,
        client_id="1",
        client_secret="never-sent",  # the tenant is refused before Canvas is called
        allow_insecure_canvas=True,
    )
    with pytest.raises(VerifyNotPossibleError):
        live_assessment_results(grading.services, pending.tenant_id, course_id, assessment_id)


def test_lost_batch_ids_are_found_with_grades_list(
    grading: Grading, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = sorted(grading.students)[0]
    student = sorted(grading.students[course_id])[0]
    first = grading.push(course_id, "list-a", [GradeEntry(student=student, score=1)])
    second = grading.push(course_id, "list-b", [GradeEntry(student=student, score=2)])
    parser = argparse.ArgumentParser()
    add_grades_commands(parser.add_subparsers(), lambda _: grading.services)
    for output in ("json", "table"):
        arguments = parser.parse_args(
            ["grades", "list", "--tenant", grading.tenant.tenant_id, "--format", output]
        )
        arguments.handler(arguments)
        printed = capsys.readouterr().out
        if output == "json":
            listed = [batch["batch_id"] for batch in json.loads(printed)]
            assert listed.index(second) < listed.index(first)  # the latest first
        else:
            assert printed.splitlines()[0].split()[:3] == ["batch", "created", "course"]
            assert first in printed and second in printed

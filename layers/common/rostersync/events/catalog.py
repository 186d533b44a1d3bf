"""Which live events exist (Canvas's documented list) and which of them matter for roster sync.

Source: Canvas's documented event types (canvas-lms doc/api/data_services/json/canvas/event-types).
"""

from __future__ import annotations

from rostersync.events.models import ObjectType

# Roster-relevant events and the object each one is about. Course-section events also carry
# cross-listing (nonxlist_course_id). account_* and user_account_association_created are the
# reference's optional roster subscriptions (sub-account moves, users attached to accounts).
ROSTER_EVENTS: dict[str, ObjectType] = {
    "course_created": ObjectType.COURSE,
    "course_updated": ObjectType.COURSE,
    "course_section_created": ObjectType.SECTION,
    "course_section_updated": ObjectType.SECTION,
    "enrollment_created": ObjectType.ENROLLMENT,
    "enrollment_updated": ObjectType.ENROLLMENT,
    "enrollment_state_created": ObjectType.ENROLLMENT_STATE,
    "enrollment_state_updated": ObjectType.ENROLLMENT_STATE,
    "user_created": ObjectType.USER,
    "user_updated": ObjectType.USER,
    "sis_batch_created": ObjectType.SIS_BATCH,
    "sis_batch_updated": ObjectType.SIS_BATCH,
    "account_created": ObjectType.ACCOUNT,
    "account_updated": ObjectType.ACCOUNT,
    "user_account_association_created": ObjectType.USER_ACCOUNT_ASSOCIATION,
}

# Documented events that are deliberately not roster input, with the reason where it is not obvious.
IGNORED_NOTES: dict[str, str] = {
    "course_completed": "module-requirement progress of one student, not a course conclusion",
    "course_progress": "module-requirement progress of one student, not a course conclusion",
    "grade_change": "grade events belong to grade passback, not the roster",
    "submission_updated": "grade events belong to grade passback, not the roster",
}

# Every event type in Canvas's documented list (canvas-format event-types).
DOCUMENTED_CANVAS_EVENTS: frozenset[str] = frozenset(
    {
        "account_created",
        "account_notification_created",
        "account_updated",
        "asset_accessed",
        "assignment_created",
        "assignment_group_created",
        "assignment_group_updated",
        "assignment_override_created",
        "assignment_override_updated",
        "assignment_updated",
        "attachment_created",
        "attachment_deleted",
        "attachment_updated",
        "content_migration_completed",
        "content_migration_started",
        "conversation_created",
        "conversation_forwarded",
        "conversation_message_created",
        "course_completed",
        "course_created",
        "course_grade_change",
        "course_progress",
        "course_section_created",
        "course_section_updated",
        "course_updated",
        "discussion_entry_created",
        "discussion_entry_submitted",
        "discussion_topic_created",
        "discussion_topic_updated",
        "enrollment_created",
        "enrollment_state_created",
        "enrollment_state_updated",
        "enrollment_updated",
        "final_grade_custom_status",
        "grade_change",
        "grade_override",
        "group_category_created",
        "group_category_updated",
        "group_created",
        "group_membership_created",
        "group_membership_updated",
        "group_updated",
        "learning_outcome_created",
        "learning_outcome_group_created",
        "learning_outcome_group_updated",
        "learning_outcome_link_created",
        "learning_outcome_link_updated",
        "learning_outcome_result_created",
        "learning_outcome_result_updated",
        "learning_outcome_updated",
        "logged_in",
        "logged_out",
        "lti_resource_link_created",
        "lti_resource_link_updated",
        "master_migration_started",
        "module_created",
        "module_item_created",
        "module_item_updated",
        "module_updated",
        "outcome_calculation_method_created",
        "outcome_calculation_method_updated",
        "outcome_proficiency_created",
        "outcome_proficiency_updated",
        "outcomes.retry_outcome_alignment_clone",
        "plagiarism_resubmit",
        "quiz_created",
        "quiz_submitted",
        "quiz_updated",
        "rubric_assessed",
        "sis_batch_created",
        "sis_batch_updated",
        "submission_comment_created",
        "submission_created",
        "submission_custom_grade_status",
        "submission_updated",
        "syllabus_updated",
        "user_account_association_created",
        "user_created",
        "user_updated",
        "wiki_page_created",
        "wiki_page_deleted",
        "wiki_page_updated",
    }
)

IGNORED_EVENTS: frozenset[str] = DOCUMENTED_CANVAS_EVENTS - ROSTER_EVENTS.keys()


def ignore_reason(event_name: str) -> str:
    """Why an event that is not in ROSTER_EVENTS is ignored."""
    if event_name in IGNORED_EVENTS:
        note = IGNORED_NOTES.get(event_name)
        return f"not roster-relevant: {event_name}" + (f" ({note})" if note else "")
    return f"unknown event type: {event_name} (not in Canvas's documented list)"

"""Every key of the single DynamoDB table. Every key of a tenant's data starts with `T#<tenant id>`, but a
machine client's (looked up by its client id; it names its tenant, and the tenant's removal removes it).

Layout (pk / sk):
  T#<t>                 TENANT                  the tenant's settings and status, and the token refresh
                                                lock (gsi1: TENANTS / <t>)
  T#<t>                 OAUTH#<state>           a pending OAuth authorization (TTL 10 min, single use)
  T#<t>                 SLOT#<n>                a leased Canvas concurrency slot (n < the slots the tenant's
                                                in-flight limit allows)
  T#<t>                 CANVAS_LIMIT            the tenant's in-flight Canvas request limit, shared by its
                                                workers (TTL a day after its last change)
  T#<t>                 COOLDOWN#<scope>        a running "sync now" cooldown (TTL an hour after it ends)
  T#<t>                 BUDGET#<scope>#<window start>   the uses counted in a fixed window (TTL)
  T#<t>                 COURSE#<course>         a synced course (data + content hash, its roster's
                                                committed generation `gen` and that roster's digest,
                                                a writer's lease; when it left the tenant's selection,
                                                out_of_scope_at / _reason / _run)
  T#<t>                 MEMBER#<user>#<course>  the user is on that course's roster (for live user events)
  T#<t>#C#<course>      SECTION# / USER# / ENROLLMENT#<id>   the course's roster (data + content hash,
                                                generation, the committed version while uncommitted)
  T#<t>                 FEED                    the tenant's change feed counter: its last sequence `seq`
  T#<t>#FEED            SEQ#<seq>               one course commit in the feed: course, generation, how
                                                many changes (written in the commit's transaction; TTL)
  T#<t>#C#<course>#CHANGES  <gen>#<index>       one change of that commit (type, data); written before
                                                the commit, visible through its feed entry only (TTL)
  CLIENT#<client id>    CLIENT                  a machine client of the delivery API and its tenant
                                                (gsi1: T#<t>#CLIENTS / <client id>)
  T#<t>                 RUN#<run>               a sync run
  T#<t>#RUN#<run>       COURSE#<course>         one course's result in that run
  T#<t>#RUN#<run>#PENDING  COURSE#<course>      a course of the run without a final result yet (TTL a week)
  T#<t>#RUN#<run>       ERROR#<course>#<user>#<code>#<message digest>   a sync error of that run
  T#<t>#HOLD            COURSE#<course>         a course's mass drop held for approval
  T#<t>#HOLD            DECIDED#<time>#<course> a decided hold (who, when, which drops)
  T#<t>#EVENTS          <time>#<key digest>     what became of a live event (TTL a week)
  T#<t>#GRADES#<batch>  BATCH                   a grade batch: course, assignment, Canvas id, notes
  T#<t>#GRADES#<batch>  GRADE#<index>           one grade (as submitted) and its state + reason
  T#<t>                 GRADEBATCH#<batch>      the batch in the tenant's list (batch ids sort by time)
  T#<t>                 ASSIGNMENT#<course>#<ext id>  our assignment id -> the Canvas assignment id, and
                                                while one is being created, who claimed the creation
  T#<t>                 ADMIN#<subject>         an admin of the tenant (email, who added them, when)
  ADMIN#<subject>       TENANT#<t>              the same membership under the admin's token subject
                                                (read on every admin request)
  ADMIN#<subject>       OPERATOR                the subject is an operator
  ADMIN#<subject>       PROFILE                 signed_out_at: tokens issued before it are refused
  idempotency#<function>  <function>.<handler>#<payload hash>   Powertools idempotency records (a
                                                live event applied, a grade push), TTL a day; not a
                                                tenant's, so deleting a tenant leaves them to expire
"""

from __future__ import annotations

TENANTS_INDEX = "gsi1"
TENANTS_INDEX_PK = "TENANTS"

TENANT_SK = "TENANT"
OAUTH_PREFIX = "OAUTH#"
SLOT_PREFIX = "SLOT#"
CANVAS_LIMIT_SK = "CANVAS_LIMIT"
COOLDOWN_PREFIX = "COOLDOWN#"
BUDGET_PREFIX = "BUDGET#"
COURSE_PREFIX = "COURSE#"
MEMBER_PREFIX = "MEMBER#"
RUN_PREFIX = "RUN#"
ERROR_PREFIX = "ERROR#"
DECIDED_PREFIX = "DECIDED#"
ASSIGNMENT_PREFIX = "ASSIGNMENT#"
BATCH_SK = "BATCH"
GRADE_BATCH_LISTING_PREFIX = "GRADEBATCH#"
GRADE_PREFIX = "GRADE#"
FEED_SK = "FEED"
FEED_ENTRY_PREFIX = "SEQ#"
CLIENT_PREFIX = "CLIENT#"
CLIENT_SK = "CLIENT"

# A course's roster items, under course_pk.
SECTION_PREFIX = "SECTION#"
USER_PREFIX = "USER#"
ENROLLMENT_PREFIX = "ENROLLMENT#"


ADMIN_PREFIX = "ADMIN#"
ADMIN_TENANT_PREFIX = "TENANT#"
OPERATOR_SK = "OPERATOR"
PROFILE_SK = "PROFILE"


def admin_pk(subject: str) -> str:
    return f"{ADMIN_PREFIX}{subject}"


def admin_tenant_sk(tenant_id: str) -> str:
    return f"{ADMIN_TENANT_PREFIX}{tenant_id}"


def tenant_admin_sk(subject: str) -> str:
    return f"{ADMIN_PREFIX}{subject}"


def tenant_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}"


def course_pk(tenant_id: str, course_id: int) -> str:
    return f"T#{tenant_id}#C#{course_id}"


def run_pk(tenant_id: str, run_id: str) -> str:
    return f"T#{tenant_id}#RUN#{run_id}"


def pending_pk(tenant_id: str, run_id: str) -> str:
    return f"T#{tenant_id}#RUN#{run_id}#PENDING"


def hold_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#HOLD"


def live_events_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#EVENTS"


def grades_pk(tenant_id: str, batch_id: str) -> str:
    return f"T#{tenant_id}#GRADES#{batch_id}"


def feed_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#FEED"


def feed_tenant_id(pk: str) -> str:
    """The tenant of a feed entry's partition key (T#<t>#FEED)."""
    return pk.removeprefix("T#").removesuffix("#FEED")


def feed_entry_sk(sequence: int) -> str:
    return f"{FEED_ENTRY_PREFIX}{sequence:012d}"


def feed_entry_sequence(sk: str) -> int:
    return int(sk.removeprefix(FEED_ENTRY_PREFIX))


def changes_pk(tenant_id: str, course_id: int) -> str:
    return f"{course_pk(tenant_id, course_id)}#CHANGES"


def change_sk(generation: int, index: int) -> str:
    return f"{generation:012d}#{index:06d}"


def client_pk(client_id: str) -> str:
    return f"{CLIENT_PREFIX}{client_id}"


def clients_index_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#CLIENTS"


def oauth_sk(state: str) -> str:
    return f"{OAUTH_PREFIX}{state}"


def slot_sk(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot}"


def cooldown_sk(scope: str) -> str:
    return f"{COOLDOWN_PREFIX}{scope}"


def budget_sk(scope: str, window_start: int) -> str:
    return f"{BUDGET_PREFIX}{scope}#{window_start}"


def course_sk(course_id: int) -> str:
    """A course's row under tenant_pk; also a course's result, pending marker or hold under theirs."""
    return f"{COURSE_PREFIX}{course_id}"


def course_id_of(sk: str) -> int:
    return int(sk.removeprefix(COURSE_PREFIX))


def member_prefix(user_id: int | str) -> str:
    return f"{MEMBER_PREFIX}{user_id}#"


def member_sk(user_id: int | str, course_id: int) -> str:
    return f"{member_prefix(user_id)}{course_id}"


def member_course_id(sk: str) -> int:
    return int(sk.rsplit("#", 1)[1])


def run_sk(run_id: str) -> str:
    return f"{RUN_PREFIX}{run_id}"


def error_sk(course_id: int | None, user_id: int | None, code: str, message_digest: str) -> str:
    return f"{ERROR_PREFIX}{course_id or '-'}#{user_id or '-'}#{code}#{message_digest}"


def decided_sk(decided_at: str, course_id: int) -> str:
    return f"{DECIDED_PREFIX}{decided_at}#{course_id}"


def live_event_sk(received_at: str, key_digest: str) -> str:
    return f"{received_at}#{key_digest}"


def grade_sk(index: int) -> str:
    return f"{GRADE_PREFIX}{index:06d}"


def assignment_sk(course_id: int, external_id: str) -> str:
    return f"{ASSIGNMENT_PREFIX}{course_id}#{external_id}"

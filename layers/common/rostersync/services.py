"""The data-access objects a function needs, built once per container from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from rostersync.settings import Settings, load_settings
from rostersync.store.queues import SyncQueues
from rostersync.store.secrets import TenantSecretStore
from rostersync.store.table import RosterTable

if TYPE_CHECKING:
    from rostersync.store.grades import GradeQueue, GradeStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    table: RosterTable
    secrets: TenantSecretStore
    queues: SyncQueues

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            table=RosterTable(settings.table_name, feed_retention_days=settings.feed_retention_days),
            secrets=TenantSecretStore(settings.tenant_secret_prefix),
            queues=SyncQueues(
                settings.sync_request_queue_url,
                settings.course_sync_queue_url,
                settings.live_events_queue_url,
            ),
        )

    # Made (and their module imported) when first used: most functions never touch grades, and a client
    # costs cold-start time.
    @cached_property
    def grades(self) -> GradeStore:
        from rostersync.store.grades import GradeStore

        return GradeStore(self.settings.table_name)

    @cached_property
    def grade_queue(self) -> GradeQueue:
        from rostersync.store.grades import GradeQueue

        return GradeQueue(self.settings.grades_queue_url)

    @classmethod
    def from_environment(cls) -> Services:
        return cls.from_settings(load_settings())


@lru_cache(maxsize=1)
def shared_services() -> Services:
    """One set of clients per container, shared by all the modules of one function."""
    return Services.from_environment()

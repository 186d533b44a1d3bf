"""The schedule fires: ask for a full sync of every connected tenant."""

from datetime import UTC, datetime
from typing import Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import BaseModel, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.models import SyncTrigger
from rostersync.services import Services
from rostersync.sync.requesting import request_scheduled_syncs
from rostersync.tracing import traced

logger = Logger()
services = Services.from_environment()


class ScheduleEvent(BaseModel):
    trigger: Literal[SyncTrigger.SCHEDULE]


@logger.inject_lambda_context
@traced
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    parse(event=event, model=ScheduleEvent)
    requests = request_scheduled_syncs(services, datetime.now(UTC))
    logger.info("scheduled syncs requested", extra={"tenants": len(requests)})
    return {"requested": [request.model_dump(mode="json") for request in requests]}

"""The schedule fires: put the delivery API's audience back in step with the registry if a deploy reset it."""

from typing import Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import BaseModel, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from rostersync.machine_clients import configured_delivery_audience, repair_audience
from rostersync.services import Services
from rostersync.tracing import traced

logger = Logger()
services = Services.from_environment()
audience = configured_delivery_audience(services.settings)


class ScheduleEvent(BaseModel):
    trigger: Literal["schedule"]


@logger.inject_lambda_context
@traced
def handler(event: dict[str, object], context: LambdaContext) -> dict[str, object]:
    parse(event=event, model=ScheduleEvent)
    repair = repair_audience(services, audience)
    # Client ids are not secrets: they name who was let in or shut out.
    if repair.added or repair.removed:
        logger.warning(
            "delivery API audience repaired", extra={"added": repair.added, "removed": repair.removed}
        )
    else:
        logger.info("delivery API audience matches the registry")
    return {"added": repair.added, "removed": repair.removed}

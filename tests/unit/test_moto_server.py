"""The local stack's moto patch: Query reads one partition and answers exactly what moto answered."""

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import boto3
import jsonpath_ng.ext.parser
import moto.core.responses
import moto.core.utils
import pytest
from botocore.exceptions import ClientError
from moto import backends, mock_aws
from moto.core.responses import BaseResponse
from moto.core.utils import unix_time
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import ThreadedMotoServer
from moto.sqs.models import Message, Queue, SQSBackend

from rostersync_local import moto_server


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        created = dynamodb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "g")
            ],
            GlobalSecondaryIndexes=[
                {"IndexName": "byg", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "ALL"}}
            ],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        with created.batch_writer() as batch:
            for partition in range(30):
                for item in range(partition % 7):
                    indexed = {"g": f"G{item % 3}"} if item != 5 else {}  # item 5 is not in the index
                    batch.put_item(Item={"pk": f"P{partition}", "sk": f"S{item:02}", **indexed})
        yield created


def in_partition(partition: str, **extra: Any) -> dict[str, Any]:
    return {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": partition}, **extra}


QUERIES: list[dict[str, Any]] = [
    in_partition("P6"),
    in_partition("P7"),  # an empty partition
    in_partition("nowhere"),
    {"KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
     "ExpressionAttributeValues": {":p": "P13", ":s": "S0"}},
    in_partition("P13", Limit=2, ScanIndexForward=False),
    in_partition("P13", Limit=2, ExclusiveStartKey={"pk": "P13", "sk": "S01"}),
    {"IndexName": "byg", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": "G1"}},
    {"IndexName": "byg", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": "G2"}},
]  # fmt: skip


def answers(table: Any) -> list[dict[str, Any]]:
    return [
        {name: value for name, value in table.query(**query).items() if name != "ResponseMetadata"}
        for query in QUERIES
    ]


def test_patched_queries_answer_what_moto_answers(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    unpatched = answers(table)
    assert [len(answer["Items"]) for answer in unpatched] == [6, 0, 0, 6, 2, 2, 28, 16]
    monkeypatch.setattr(Table, "query", Table.query)
    monkeypatch.setattr(Table, "all_items", Table.all_items)
    moto_server.index_queries_by_partition()
    assert answers(table) == unpatched


def test_a_patched_query_reads_only_its_partition(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Table, "query", Table.query)
    monkeypatch.setattr(Table, "all_items", Table.all_items)
    moto_server.index_queries_by_partition()
    seen: list[int] = []
    patched_all_items: Callable[[Table], list[Any]] = Table.all_items

    def counting(self: Table) -> list[Any]:
        items = patched_all_items(self)
        seen.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counting)
    table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": "P6"})
    assert seen == [6]  # not the table's 85 items
    table.query(IndexName="byg", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": "G0"})
    assert seen == [6, 81]  # the 4 items without `g` are not in the index
    assert len(table.scan()["Items"]) == sum(p % 7 for p in range(30))  # a scan still sees everything


def test_remembered_backends_route_every_service_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)
    monkeypatch.setattr(
        DomainDispatcherApplication,
        "get_backend_for_host",
        DomainDispatcherApplication.get_backend_for_host,
    )
    moto_server.remember_backends_by_host()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        clients = {
            name: boto3.client(
                name, endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                aws_access_key_id="local", aws_secret_access_key="local",
            )
            for name in ("dynamodb", "sqs", "secretsmanager")
        }  # fmt: skip
        for _ in range(2):  # the second round is answered from the remembered backends
            assert "TableNames" in clients["dynamodb"].list_tables()
            url = clients["sqs"].create_queue(QueueName="q")["QueueUrl"]
            assert url in clients["sqs"].list_queues()["QueueUrls"]
            assert "SecretList" in clients["secretsmanager"].list_secrets()
    finally:
        server.stop()


def test_a_patched_transaction_writes_all_or_nothing_without_copying_the_table(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy
    from types import SimpleNamespace

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items)
    moto_server.transactions_without_table_copies()
    copies: list[object] = []

    # moto's own transaction deep-copies each table it names (O(table), racing other requests).
    def spy(value: Any) -> Any:
        if isinstance(value, Table):
            copies.append(value)
        return copy.deepcopy(value)

    monkeypatch.setattr(models, "copy", SimpleNamespace(deepcopy=spy))
    client = table.meta.client
    counter = {"pk": "P1", "sk": "COUNTER"}

    def bump(seen: int | None, entry: str) -> None:
        condition = "attribute_not_exists(n)" if seen is None else "n = :seen"
        client.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "t", "Key": counter, "UpdateExpression": "SET n = :next",
                            "ConditionExpression": condition,
                            "ExpressionAttributeValues": {":next": (seen or 0) + 1,
                                                          **({":seen": seen} if seen is not None else {})}}},
                {"Put": {"TableName": "t", "Item": {"pk": "P1", "sk": entry},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )  # fmt: skip

    bump(None, "E1")
    with pytest.raises(client.exceptions.TransactionCanceledException) as refused:
        bump(None, "E2")  # the counter moved on: nothing of this transaction is written
    reasons = [reason["Code"] for reason in refused.value.response["CancellationReasons"]]
    assert reasons == ["ConditionalCheckFailed", "None"]
    bump(1, "E3")
    assert table.get_item(Key=counter)["Item"]["n"] == 2
    written = {item["sk"] for item in table.query(**in_partition("P1"))["Items"]}
    assert {"E1", "E3"} <= written and "E2" not in written
    assert copies == []


class PausedAfterItsCheck:
    """A condition that, once evaluated, waits (up to half a second) for a second thread to evaluate its own:
    two writes whose checks are not shut out from each other both pass them before either writes."""

    def __init__(self, condition: Any, both_checked: threading.Barrier) -> None:
        self.condition, self.both_checked = condition, both_checked

    def expr(self, item: Any) -> bool:
        holds = bool(self.condition.expr(item))
        with contextlib.suppress(threading.BrokenBarrierError):
            self.both_checked.wait(timeout=0.5)
        return holds


@pytest.mark.parametrize("operation", ["put_item", "update_item"])
def test_two_conditional_writes_to_one_item_at_once_let_one_succeed(
    table: Any, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    from moto.dynamodb import comparisons, models
    from moto.dynamodb.models import DynamoDBBackend

    for name in moto_server.ITEM_WRITES:
        monkeypatch.setattr(DynamoDBBackend, name, getattr(DynamoDBBackend, name))
    moto_server.atomic_conditional_writes()
    both_checked = threading.Barrier(2)
    # put_item evaluates its condition through get_filter_expression, update_item through a parser.
    filter_expression = comparisons.get_filter_expression
    condition_parser = comparisons.create_condition_expression_parser
    monkeypatch.setattr(
        models.table, "get_filter_expression",
        lambda *args, **kwargs: PausedAfterItsCheck(filter_expression(*args, **kwargs), both_checked),
    )  # fmt: skip
    monkeypatch.setattr(
        models, "create_condition_expression_parser",
        lambda *args, **kwargs: SimpleNamespace(
            parse=lambda: PausedAfterItsCheck(condition_parser(*args, **kwargs).parse(), both_checked)
        ),
    )  # fmt: skip
    key = {"pk": "CLAIM", "sk": "one"}

    def claim(owner: str) -> bool:
        try:
            if operation == "put_item":
                table.put_item(Item={**key, "owner": owner}, ConditionExpression="attribute_not_exists(pk)")
            else:
                table.update_item(
                    Key=key, UpdateExpression="SET claimed_by = :owner",
                    ConditionExpression="attribute_not_exists(claimed_by)",
                    ExpressionAttributeValues={":owner": owner},
                )  # fmt: skip
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return False
        return True

    with ThreadPoolExecutor(max_workers=2) as pool:
        claimed = list(pool.map(claim, ["a", "b"]))
    assert sorted(claimed) == [False, True]
    winner = "a" if claimed[0] else "b"
    stored = table.get_item(Key=key)["Item"]
    assert stored.get("owner", stored.get("claimed_by")) == winner


IDENTITY_SOURCE = "$request.header.Authorization"


def test_get_authorizers_lists_the_apis_own_authorizers(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.apigatewayv2.responses import ApiGatewayV2Response

    monkeypatch.setattr(ApiGatewayV2Response, "get_authorizers", None, raising=False)
    moto_server.list_authorizers()
    with mock_aws():
        apigateway = boto3.client("apigatewayv2", region_name="us-east-1")
        api, other = (apigateway.create_api(Name=name, ProtocolType="HTTP")["ApiId"] for name in "ab")
        made = [
            apigateway.create_authorizer(
                ApiId=api_id, Name=name, AuthorizerType="JWT", IdentitySource=[IDENTITY_SOURCE],
                JwtConfiguration={"Issuer": "https://issuer.test", "Audience": [name]},
            )["AuthorizerId"]
            for api_id, name in ((api, "ClientJwt"), (api, "AdminJwt"), (other, "Elsewhere"))
        ]  # fmt: skip
        listed = apigateway.get_authorizers(ApiId=api)["Items"]
    assert [
        (item["AuthorizerId"], item["Name"], item["JwtConfiguration"]["Audience"]) for item in listed
    ] == [
        (made[0], "ClientJwt", ["ClientJwt"]),
        (made[1], "AdminJwt", ["AdminJwt"]),
    ]


def _undo_queue_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*moto_server._MESSAGE_COUNTS, "send_message", "is_message_valid_based_on_retention_period"):
        owner = Queue if name.startswith("approximate") else SQSBackend
        monkeypatch.setattr(owner, name, vars(owner)[name])


def test_a_patched_send_reads_no_other_message_and_the_counts_stay_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _undo_queue_patches(monkeypatch)
    moto_server.sends_without_counting_the_queue()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        for number in range(50):
            sqs.send_message(QueueUrl=url, MessageBody=str(number))
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300)
        reads = 0
        visible = vars(Message)["visible"]

        def counted(message: Message) -> bool:
            nonlocal reads
            reads += 1
            return bool(visible.fget(message))

        monkeypatch.setattr(Message, "visible", property(counted))
        sqs.send_message(QueueUrl=url, MessageBody="one more")
        assert reads == 0
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == (
            "41",
            "10",
        )


def test_a_patched_receive_still_drops_messages_past_their_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    _undo_queue_patches(monkeypatch)
    moto_server.sends_without_counting_the_queue()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        clock = unix_time() + 61
        monkeypatch.setattr(moto_server, "unix_time", lambda: clock)
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        monkeypatch.setattr(moto_server, "unix_time", lambda: clock - 2)
        sqs.send_message(QueueUrl=url, MessageBody="new")
        bodies = [message["Body"] for message in sqs.receive_message(QueueUrl=url)["Messages"]]
        assert bodies == ["new"]


def test_each_event_path_is_parsed_once_and_every_event_gets_its_own_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    parse = jsonpath_ng.ext.parser.parse

    def counting(path: str) -> Any:
        parsed.append(path)
        return parse(path)

    monkeypatch.setattr(jsonpath_ng.ext.parser, "parse", counting)
    monkeypatch.setattr(jsonpath_ng.ext, "parse", counting)
    moto_server.parse_each_event_path_once()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        events = boto3.client("events", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="r", EventPattern=json.dumps({"source": ["s"]}))
        events.put_targets(
            Rule="r",
            Targets=[{"Id": "q", "Arn": arn, "InputTransformer": {
                "InputPathsMap": {"n": "$.detail.n"}, "InputTemplate": '{"n": <n>}'}}],
        )  # fmt: skip
        for number in (1, 2, 3):
            events.put_events(
                Entries=[{"Source": "s", "DetailType": "d", "Detail": json.dumps({"n": number})}]
            )
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(json.loads(message["Body"])["n"] for message in received) == [1, 2, 3]
    assert parsed and len(parsed) == len(set(parsed))


def test_patched_item_reads_answer_what_moto_serializes(monkeypatch: pytest.MonkeyPatch) -> None:
    for handler, actions in moto_server.ITEM_READS.items():
        for action in actions:
            monkeypatch.setattr(handler, action, getattr(handler, action))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        dynamodb, streams = (
            boto3.client(
                name, endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                aws_access_key_id="local", aws_secret_access_key="local",
            )
            for name in ("dynamodb", "dynamodbstreams")
        )  # fmt: skip
        arn = dynamodb.create_table(
            TableName="s",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        item = {
            "pk": {"S": "a"}, "n": {"N": "1.5"}, "b": {"B": b"\x00\xff"},
            "l": {"L": [{"S": "x"}, {"NULL": True}]}, "m": {"M": {"t": {"BOOL": True}}},
            "ss": {"SS": ["p", "q"]},
        }  # fmt: skip
        dynamodb.put_item(TableName="s", Item=item)
        dynamodb.put_item(TableName="s", Item={**item, "n": {"N": "2"}})
        dynamodb.delete_item(TableName="s", Key={"pk": {"S": "a"}})
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

        dynamodb.put_item(TableName="s", Item={**item, "pk": {"S": "b"}})

        def reads() -> tuple[Any, ...]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            return (
                list(streams.get_records(ShardIterator=iterator, Limit=10)["Records"]),
                dynamodb.get_item(TableName="s", Key={"pk": {"S": "b"}}, ReturnConsumedCapacity="TOTAL"),
                dynamodb.get_item(TableName="s", Key={"pk": {"S": "none"}}),
                dynamodb.batch_get_item(
                    RequestItems={"s": {"Keys": [{"pk": {"S": "b"}}, {"pk": {"S": "c"}}]}}
                ),
                dynamodb.query(
                    TableName="s",
                    KeyConditionExpression="pk = :b",
                    ExpressionAttributeValues={":b": {"S": "b"}},
                ),
                dynamodb.query(
                    TableName="s",
                    KeyConditionExpression="pk = :b",
                    ExpressionAttributeValues={":b": {"S": "b"}},
                    Select="COUNT",
                    Limit=1,
                ),
            )

        by_moto = reads()
        moto_server.item_reads_as_json()
        serialized_by_moto: list[str] = []
        serialize = BaseResponse.serialized

        def counting(response: BaseResponse, result: Any) -> Any:
            serialized_by_moto.append(response._get_action())
            return serialize(response, result)

        monkeypatch.setattr(BaseResponse, "serialized", counting)
        patched = reads()
    finally:
        server.stop()
    # only the stream's iterator, which holds no item, goes through moto's serializer
    assert serialized_by_moto == ["GetShardIterator"]
    for answer in (*by_moto[1:], *patched[1:]):
        answer.pop("ResponseMetadata")
    assert [record["eventName"] for record in patched[0]] == ["INSERT", "MODIFY", "REMOVE", "INSERT"]
    assert patched[0][0]["dynamodb"]["NewImage"]["b"] == {"B": b"\x00\xff"}
    assert patched[1]["Item"]["b"] == {"B": b"\x00\xff"}
    assert patched == by_moto


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto.sqs.models import Queue

    monkeypatch.setattr(Queue, "messages", Queue.messages)
    moto_server.fair_queue_receive_order()
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def receive(sqs: Any, url: str, count: int) -> list[str]:
    return [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count)["Messages"]]


def test_a_big_groups_backlog_does_not_hold_back_a_quiet_groups_message(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="courses")["QueueUrl"]
    for index in range(20):
        sqs.send_message(QueueUrl=url, MessageBody=f"big {index}", MessageGroupId="big")
    sqs.send_message(QueueUrl=url, MessageBody="small 0", MessageGroupId="small")
    assert receive(sqs, url, 1) == ["big 0"]  # neither group has anything in flight: send order
    # "big" has a message in flight, "small" none: "small" first, then "big" oldest first.
    assert receive(sqs, url, 10) == ["small 0", *(f"big {index}" for index in range(1, 10))]


def test_a_fifo_queue_keeps_strict_order(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="courses.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    sent = [("a", "a 0"), ("a", "a 1"), ("a", "a 2"), ("b", "b 0")]
    for group, body in sent:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    assert receive(sqs, url, 10) == [body for _, body in sent]  # a fair order would put "b 0" second


def test_each_response_class_is_listed_once_and_actions_still_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[object] = []
    list_methods = moto.core.utils.method_names_from_class

    def counting(clazz: object) -> list[str]:
        listed.append(clazz)
        return list_methods(clazz)

    monkeypatch.setattr(moto.core.utils, "method_names_from_class", counting)
    # restored after the test, as the patch replaces it
    module = vars(moto.core.responses)
    monkeypatch.setitem(module, "method_names_from_class", module["method_names_from_class"])
    moto_server.list_each_response_class_once()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        for number in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(number))
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        with pytest.raises(ClientError, match="NonExistentQueue"):
            sqs.get_queue_url(QueueName="missing")
    assert sorted(message["Body"] for message in received) == ["0", "1", "2"]
    assert len(listed) == len(set(listed)) == 1  # SQS's response class, once for five requests

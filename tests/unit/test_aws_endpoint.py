"""The template passes its AwsEndpointUrl parameter (empty by default) to every function as
AWS_ENDPOINT_URL, which boto3 reads itself: empty must mean the real AWS endpoints."""

import pytest

from rostersync.services import Services
from rostersync.settings import Settings


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("", "https://{service}.us-east-1.amazonaws.com"),
        ("http://127.0.0.1:4566", "http://127.0.0.1:4566"),
    ],
)
def test_an_empty_aws_endpoint_url_means_the_real_aws_endpoints(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, expected: str
) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        table_name="t", course_sync_queue_url="q", sync_request_queue_url="q", tenant_secret_prefix="p"
    )
    services = Services.from_settings(settings)
    clients = {
        "dynamodb": services.table._table.meta.client,
        "sqs": services.queues._client,
        "secretsmanager": services.secrets._client,
    }
    for service, client in clients.items():
        assert client.meta.endpoint_url == expected.format(service=service)

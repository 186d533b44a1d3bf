"""Helpers for HTTP handlers (not for logic): our public base URL and small HTML pages."""

from __future__ import annotations

from html import escape

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

# Everything the pages need comes from our own origin; nothing may frame them or run inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def public_base_url(event: APIGatewayProxyEventV2) -> str:
    """The URL the caller used to reach the API (API Gateway sets Host and X-Forwarded-Proto)."""
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    host = headers.get("host") or event.request_context.domain_name
    proto = headers.get("x-forwarded-proto", "https")
    stage = event.request_context.stage
    prefix = "" if not stage or stage == "$default" else f"/{stage}"
    return f"{proto}://{host}{prefix}"


def html_page(status_code: int, title: str, message: str) -> Response[str]:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} - rostersync</title></head>"
        f"<body><main><h1>{escape(title)}</h1><p>{escape(message)}</p></main></body></html>"
    )
    return Response(
        status_code=status_code,
        content_type=content_types.TEXT_HTML,
        body=body,
        headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
    )

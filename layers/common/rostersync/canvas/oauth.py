"""Canvas's OAuth2 web flow: the authorize URL, the code exchange and the refresh."""

from __future__ import annotations

from urllib.parse import urlencode

import requests
from pydantic import ValidationError

from rostersync.canvas.client import USER_AGENT
from rostersync.canvas.errors import CanvasUnavailableError, OAuthError
from rostersync.canvas.http import canvas_session
from rostersync.canvas.models import TokenGrant
from rostersync.canvas.scopes import required_scopes
from rostersync.canvas.urls import check_origin_is_reachable_safely


def authorize_url(canvas_url: str, *, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
            # One space-separated parameter: Canvas keeps only the last of repeated `scope=`.
            "scope": " ".join(required_scopes()),
            "purpose": "rostersync roster sync",
        }
    )
    return f"{canvas_url}/login/oauth2/auth?{query}"


class OAuthClient:
    def __init__(
        self,
        canvas_url: str,
        *,
        client_id: str,
        client_secret: str,
        allow_insecure: bool,
        timeout_seconds: float,
    ) -> None:
        check_origin_is_reachable_safely(canvas_url, allow_insecure=allow_insecure)
        self._token_url = f"{canvas_url}/login/oauth2/token"
        self._session = canvas_session(allow_insecure=allow_insecure)
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout_seconds

    def exchange_code(self, code: str, redirect_uri: str) -> TokenGrant:
        return self._post(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            "exchange the code",
        )

    def refresh(self, refresh_token: str) -> TokenGrant:
        return self._post(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, "refresh the token"
        )

    def revoke(self, access_token: str) -> None:
        """End the grant in Canvas (its refresh token too): `DELETE /login/oauth2/token`."""
        try:
            response = self._session.delete(
                self._token_url,
                headers={"User-Agent": USER_AGENT, "Authorization": f"Bearer {access_token}"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise CanvasUnavailableError(
                f"could not reach Canvas to revoke: {type(error).__name__}"
            ) from error
        if response.status_code != 200:
            raise OAuthError("revoke_refused", f"HTTP {response.status_code}", status=response.status_code)

    def _post(self, form: dict[str, str], purpose: str) -> TokenGrant:
        data = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            response = self._session.post(
                self._token_url,
                data=data,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,  # older Canvas answers token errors with a 302 to the redirect URI
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise CanvasUnavailableError(
                f"could not reach Canvas to {purpose}: {type(error).__name__}"
            ) from error
        if 300 <= response.status_code < 400:
            raise OAuthError("redirected", f"Canvas redirected the token request ({response.status_code})")
        if response.status_code >= 500:
            raise CanvasUnavailableError(f"Canvas answered {response.status_code} when asked to {purpose}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            raise OAuthError(
                str(body.get("error", "unknown_error")),
                str(body.get("error_description", f"HTTP {response.status_code}"))[:200],
                status=response.status_code,
            )
        try:
            return TokenGrant.model_validate(body)
        except ValidationError as error:
            # The body holds tokens: report only which fields were wrong.
            fields = ", ".join(str(item["loc"][0]) for item in error.errors() if item["loc"])
            raise OAuthError("invalid_response", f"token response lacks or mangles: {fields}") from None

"""Canvas OAuth2 web flow: ``/login/oauth2/auth``, ``/login/oauth2/accept``, ``/login/oauth2/token``."""

from __future__ import annotations

import hmac
import html
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from werkzeug.wrappers import Request, Response

from .state import AuthCode, DeveloperKey, Grant, SimulatorState
from .web import BEARER_CHALLENGE, OAUTH_CHALLENGE, html_response, json_response, request_params

INVALID_SCOPE_TEXT = (
    "A requested scope is invalid, unknown, malformed, or exceeds the scope granted by the resource owner. "
    "The following scopes were requested, but not granted: "
)


# ------------------------------------------------------------------------------------------- helpers
def bearer_token(request: Request) -> str | None:
    """The access token of a request: ``Authorization: Bearer`` or the ``access_token`` parameter."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = request.args.get("access_token") or request.form.get("access_token")
    return token or None


def redirect_matches(registered: str, requested: str) -> bool:
    """Canvas rule: the requested redirect URI must be on the key's redirect host or a subdomain of it."""
    if not requested:
        return False
    if requested == registered:
        return True
    want, got = urlsplit(registered), urlsplit(requested)
    if got.scheme not in {"http", "https"} or not got.hostname or not want.hostname:
        return False
    return got.hostname == want.hostname or got.hostname.endswith(f".{want.hostname}")


def redirect_with(uri: str, params: dict[str, str | None]) -> Response:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(key, value) for key, value in params.items() if value is not None]
    location = urlunsplit(parts._replace(query=urlencode(query)))
    return Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _find_key(state: SimulatorState, client_id: str | None) -> DeveloperKey | None:
    if not client_id or not client_id.isascii() or not client_id.isdigit():
        return None
    return state.tokens.developer_keys.get(client_id)


def _auth_error(request: Request, error: str, description: str, status: int = 400) -> Response:
    """Errors of /login/oauth2/auth that Canvas renders instead of redirecting."""
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return json_response({"error": error, "error_description": description}, status)
    body = (
        f'<h1>Authorization error</h1>\n<p id="error">{html.escape(error)}</p>\n'
        f'<p id="error_description">{html.escape(description)}</p>'
    )
    return html_response("Authorization error", body, status)


def _oauth_error(status: int, error: str, description: str) -> Response:
    headers = {"WWW-Authenticate": OAUTH_CHALLENGE} if status == 401 else {}
    return json_response({"error": error, "error_description": description}, status, headers)


def _redirect_with_code(state: SimulatorState, client_id: str, redirect_uri: str, scopes: tuple[str, ...],
                        oauth_state: str | None) -> Response:  # fmt: skip
    user_id = state.institution.api_user.id
    code = state.tokens.issue_code(client_id, redirect_uri, scopes, user_id, state.now())
    return redirect_with(redirect_uri, {"code": code.code, "state": oauth_state})


# -------------------------------------------------------------------------------------- /auth, /accept
def authorize(request: Request, state: SimulatorState) -> Response:
    args = request.args
    key = _find_key(state, args.get("client_id"))
    if key is None:
        return _auth_error(request, "invalid_client", "unknown client")
    redirect_uri = args.get("redirect_uri", "")
    if not redirect_matches(key.redirect_uri, redirect_uri):
        return _auth_error(request, "invalid_request", "redirect_uri does not match client settings")
    oauth_state = args.get("state")
    if args.get("response_type") != "code":
        return redirect_with(
            redirect_uri,
            {
                "error": "unsupported_response_type",
                "error_description": "Only response_type=code is permitted",
                "state": oauth_state,
            },
        )
    scope_values = args.getlist("scope") or args.getlist("scopes")
    requested = tuple(dict.fromkeys((scope_values[-1] if scope_values else "").split()))
    missing = [scope for scope in requested if scope not in key.scopes]
    if not requested or missing:
        return redirect_with(
            redirect_uri,
            {"error": "invalid_scope", "error_description": INVALID_SCOPE_TEXT + " ".join(missing),
             "state": oauth_state},
        )  # fmt: skip
    if state.config.auto_approve:
        return _redirect_with_code(state, key.client_id, redirect_uri, requested, oauth_state)
    pending = state.tokens.new_pending(key, redirect_uri, requested, oauth_state, state.now())
    return _approve_page(
        state, key, pending.id, redirect_uri=redirect_uri, scopes=requested, oauth_state=oauth_state
    )


def _approve_page(
    state: SimulatorState,
    key: DeveloperKey,
    pending_id: str,
    *,
    redirect_uri: str,
    scopes: tuple[str, ...],
    oauth_state: str | None,
) -> Response:
    esc = html.escape
    items = "\n".join(f"  <li>{esc(scope)}</li>" for scope in scopes)
    hidden = {
        "authorization_id": pending_id,
        "client_id": key.client_id,
        "redirect_uri": redirect_uri,
        "state": oauth_state or "",
        "scope": " ".join(scopes),
    }
    fields = "\n".join(
        f'  <input type="hidden" name="{esc(name)}" value="{esc(value)}">' for name, value in hidden.items()
    )
    body = f"""<h1>Authorize</h1>
<p><strong id="app-name">{esc(key.name)}</strong> is requesting access to your account
(<span id="user-name">{esc(state.institution.api_user.name)}</span>).</p>
<p>This application will be able to:</p>
<ul id="scopes">
{items}
</ul>
<form method="post" action="/login/oauth2/accept">
{fields}
  <button type="submit" name="authorize" value="1">Authorize</button>
  <button type="submit" name="cancel" value="1">Cancel</button>
</form>"""
    return html_response("Authorize", body)


def accept(request: Request, state: SimulatorState) -> Response:
    pending = state.tokens.take_pending(request.form.get("authorization_id", ""), state.now())
    if pending is None:
        return _auth_error(request, "invalid_request", "authorization request not found or expired")
    if "cancel" in request.form:
        return redirect_with(pending.redirect_uri, {"error": "access_denied", "state": pending.state})
    return _redirect_with_code(state, pending.client_id, pending.redirect_uri, pending.scopes, pending.state)


# ------------------------------------------------------------------------------------------- /token
def _token_body(state: SimulatorState, grant: Grant, *, with_refresh: bool) -> dict[str, Any]:
    user = state.institution.api_user
    body: dict[str, Any] = {
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "user": {"id": user.id, "name": user.name},
    }
    if with_refresh:
        body["refresh_token"] = grant.refresh_token
    body["expires_in"] = round(grant.expires_at - grant.issued_at)
    body["canvas_region"] = "unknown"
    return body


def token(request: Request, state: SimulatorState) -> Response:
    params = request_params(request)
    client_id = params.get("client_id")
    client_secret = params.get("client_secret")
    auth = request.authorization
    if auth is not None and auth.type == "basic" and not client_id:
        client_id, client_secret = auth.username, auth.password
    key = _find_key(state, str(client_id) if client_id is not None else None)
    if key is None:
        return _oauth_error(401, "invalid_client", "unknown client")
    if not isinstance(client_secret, str) or not hmac.compare_digest(
        client_secret.encode(), key.client_secret.encode()
    ):
        return _oauth_error(401, "invalid_client", "invalid client")
    grant_type = params.get("grant_type") or ("authorization_code" if params.get("code") else None)
    if grant_type == "authorization_code":
        response = _exchange_code(state, key, params)
    elif grant_type == "refresh_token":
        response = _refresh(state, key, params)
    else:
        response = _oauth_error(
            400, "unsupported_grant_type", "The grant_type you requested is not supported by this server"
        )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _exchange_code(state: SimulatorState, key: DeveloperKey, params: dict[str, Any]) -> Response:
    raw_code = params.get("code")
    if not isinstance(raw_code, str) or not raw_code:
        return _oauth_error(
            400,
            "invalid_request",
            "You must provide the code parameter when using the authorization_code grant type",
        )
    code: AuthCode | None = state.tokens.find_code(raw_code, state.now())
    if code is None:
        return _oauth_error(400, "invalid_grant", "authorization_code not found")
    if code.client_id != key.client_id:
        return _oauth_error(400, "invalid_grant", "incorrect client")
    if params.get("redirect_uri") != code.redirect_uri:
        return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
    state.tokens.consume_code(raw_code)
    grant = state.tokens.issue_grant(code, state.now(), state.config.token_ttl_seconds)
    return json_response(_token_body(state, grant, with_refresh=True))


def _refresh(state: SimulatorState, key: DeveloperKey, params: dict[str, Any]) -> Response:
    raw = params.get("refresh_token")
    if not isinstance(raw, str) or not raw:
        return _oauth_error(
            400,
            "invalid_request",
            "You must provide the refresh_token parameter when using the refresh_token grant type",
        )
    grant = state.tokens.by_refresh_token(raw)
    if grant is None:
        return _oauth_error(400, "invalid_request", "refresh_token not found")
    if grant.client_id != key.client_id:
        return _oauth_error(400, "invalid_grant", "incorrect client")
    state.tokens.refresh(grant, state.now(), state.config.token_ttl_seconds)
    return json_response(_token_body(state, grant, with_refresh=False))


def logout(request: Request, state: SimulatorState) -> Response:
    """``DELETE /login/oauth2/token``: deletes the access token and its grant (refresh token included)."""
    raw = bearer_token(request)
    if raw is None:
        return json_response(
            {"message": "can't delete OAuth access token when not using an OAuth access token"}, 400
        )
    grant = state.tokens.by_access_token(raw)
    if grant is None:
        return json_response(
            {"errors": [{"message": "Invalid access token."}]}, 401, {"WWW-Authenticate": BEARER_CHALLENGE}
        )
    state.tokens.revoke(grant)
    return json_response({})

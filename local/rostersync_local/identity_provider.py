"""The local stack's stand-in for Cognito's hosted UI: an OpenID Connect provider over moto's user pool.

The settings page signs in here exactly as it does against a deployed stack's Cognito: discovery
document, /oauth2/authorize with a login form, /oauth2/token (authorization code with PKCE S256, and
refresh), JWKS, /oauth2/revoke and /logout, on Cognito's paths and with Cognito's claims (the access
token carries `client_id`, not `aud`; groups as `cognito:groups`).

moto's cognito-idp is the user directory (users, passwords, groups, AdminCreateUser, AdminInitiateAuth),
so the CLI makes the same boto3 calls locally and deployed. What moto lacks, and this module adds: the
hosted UI's pages and OAuth endpoints (authorize, token, PKCE, revocation, logout), tokens signed by a key
whose JWKS the authorizer can fetch at our issuer URL, and mail (an invitation's temporary password is
never sent: locally `admin invite --password` sets the password). Triggers (Pre Token Generation) are not
run.

Grants are a table (`_grants`). Besides the settings page's, the delivery API's machine clients have the
`client_credentials` grant: they are moto's app clients (`rostersync client add` creates them with boto3, as
on a deployed stack), whose secret, allowed flows and scopes are read from moto (DescribeUserPoolClient);
the access token carries the granted scopes (rosters/read) and, as Cognito's, `client_id` and no `aud`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from werkzeug.wrappers import Request, Response

from rostersync_local.template import JwtAuthorizerSpec

CODE_TTL_SECONDS = 300
LOGIN_TTL_SECONDS = 600
TOKEN_TTL_SECONDS = 3600
SESSION_COOKIE = "rostersync_idp_session"
# One message for a wrong password and an unknown email, as Cognito's hosted UI: nothing else leaks.
WRONG_CREDENTIALS = "Incorrect email or password."
# form-action covers the redirect after the form: the login form may end at the registered clients.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; frame-ancestors 'none'"


@dataclass(frozen=True)
class User:
    subject: str
    email: str
    groups: tuple[str, ...]


class PasswordChangeRequiredError(Exception):
    """The user signs in with a temporary password, which the hosted UI would have them replace."""


class UserDirectory:
    """Users, passwords and groups in a Cognito user pool (moto's, locally), through boto3."""

    def __init__(self, cognito: Any, pool_id: str, client_id: str) -> None:
        self._cognito = cognito
        self._pool_id = pool_id
        self._client_id = client_id

    def authenticate(self, email: str, password: str) -> User | None:
        try:
            answer = self._cognito.admin_initiate_auth(
                UserPoolId=self._pool_id,
                ClientId=self._client_id,
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": email, "PASSWORD": password},
            )
        except self._cognito.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in {"NotAuthorizedException", "UserNotFoundException"}:
                return None
            raise
        if answer.get("ChallengeName") == "NEW_PASSWORD_REQUIRED":
            raise PasswordChangeRequiredError
        return self.user(email)

    def app_client(self, client_id: str) -> dict[str, Any] | None:
        """An app client's settings (with its secret, when it has one), or None when there is no such one."""
        try:
            found = self._cognito.describe_user_pool_client(UserPoolId=self._pool_id, ClientId=client_id)
        except self._cognito.exceptions.ResourceNotFoundException:
            return None
        return dict(found["UserPoolClient"])

    def user(self, username: str) -> User | None:
        try:
            found = self._cognito.admin_get_user(UserPoolId=self._pool_id, Username=username)
        except self._cognito.exceptions.UserNotFoundException:
            return None
        if not found.get("Enabled", True):
            return None
        attributes = {item["Name"]: item["Value"] for item in found["UserAttributes"]}
        groups = self._cognito.admin_list_groups_for_user(UserPoolId=self._pool_id, Username=username)
        return User(
            attributes["sub"],
            attributes.get("email", username),
            tuple(group["GroupName"] for group in groups["Groups"]),
        )


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    redirect_uris: frozenset[str]
    logout_uris: frozenset[str]

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(_origin(uri) for uri in self.redirect_uris | self.logout_uris)


@dataclass(frozen=True)
class _AuthorizationRequest:
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    code_challenge: str
    scope: str
    expires_at: float


@dataclass(frozen=True)
class _IssuedCode:
    request: _AuthorizationRequest
    user: User
    expires_at: float


@dataclass
class _RefreshGrant:
    client_id: str
    email: str
    scope: str
    revoked: bool = False


@dataclass
class _State:
    """Everything the provider remembers (in memory: a restart signs everyone out)."""

    logins: dict[str, _AuthorizationRequest] = field(default_factory=dict)
    codes: dict[str, _IssuedCode] = field(default_factory=dict)
    refresh_grants: dict[str, _RefreshGrant] = field(default_factory=dict)
    sessions: dict[str, User] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class LocalIdentityProvider:
    def __init__(self, issuer_url: str) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self._kid = "local-" + secrets.token_hex(4)
        self._key = RSAKey.generate_key(2048, parameters={"kid": self._kid})
        self._directory: UserDirectory | None = None
        self._clients: dict[str, RegisteredClient] = {}
        self._state = _State()
        self._grants: dict[str, Callable[[Request], dict[str, Any]]] = {
            "authorization_code": self._grant_authorization_code,
            "refresh_token": self._grant_refresh_token,
            "client_credentials": self._grant_client_credentials,
        }

    def serve(self, directory: UserDirectory, clients: Iterable[RegisteredClient]) -> None:
        """Start answering sign-ins: the user pool exists once the template's resources are made."""
        self._directory = directory
        self._clients = {client.client_id: client for client in clients}

    # -- tokens ---------------------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._key.as_dict(private=False), "alg": "RS256", "use": "sig"}]}

    def openid_configuration(self) -> dict[str, Any]:
        base = self.issuer_url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/token",
            "revocation_endpoint": f"{base}/oauth2/revoke",
            "end_session_endpoint": f"{base}/logout",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "grant_types_supported": sorted(self._grants),
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        }

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode({"alg": "RS256", "kid": self._kid}, claims, self._key)

    def access_token(
        self,
        subject: str,
        client_id: str,
        *,
        username: str | None = None,
        groups: Iterable[str] = (),
        scope: str = "openid email",
        audience: str | None = None,
        ttl_seconds: int = TOKEN_TTL_SECONDS,
    ) -> str:
        """An access token as Cognito's: `client_id` (no `aud` unless given), `token_use`, `scope`, the
        user's groups."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "sub": subject,
            "client_id": client_id,
            "token_use": "access",
            "scope": scope,
            "auth_time": now,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_hex(16),
            "username": username or subject,
        }
        if groups := list(groups):
            claims["cognito:groups"] = groups
        if audience is not None:
            claims["aud"] = audience
        return self.sign(claims)

    def _id_token(self, user: User, client_id: str, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "sub": user.subject,
            "aud": client_id,
            "token_use": "id",
            "email": user.email,
            "email_verified": True,
            "auth_time": now,
            "iat": now,
            "exp": now + TOKEN_TTL_SECONDS,
        }
        if nonce:
            claims["nonce"] = nonce
        if user.groups:
            claims["cognito:groups"] = list(user.groups)
        return self.sign(claims)

    def verify(self, token: str, authorizer: JwtAuthorizerSpec) -> dict[str, Any] | None:
        """The token's claims when API Gateway's JWT authorizer would let it through, else None: signed
        by this issuer's key, `iss` the configured issuer, `aud` (or, without one, `client_id`) among the
        configured audiences, `exp` in force."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=["RS256"])
            claims = dict(decoded.claims)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": authorizer.issuer}, exp={"essential": True}
            ).validate(claims)
        except (JoseError, ValueError):
            return None
        audiences = claims.get("aud", claims.get("client_id"))
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if not any(audience in authorizer.audience for audience in audiences):
            return None
        return claims

    # -- HTTP -----------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/.well-known/openid-configuration"): lambda _: self._public_json(
                self.openid_configuration()
            ),
            ("GET", "/.well-known/jwks.json"): lambda _: self._public_json(self.jwks()),
            ("GET", "/oauth2/authorize"): self._authorize,
            ("POST", "/login"): self._login,
            ("POST", "/oauth2/token"): self._token,
            ("POST", "/oauth2/revoke"): self._revoke,
            ("GET", "/logout"): self._logout,
        }
        handler = routes.get((request.method, request.path))
        if self._directory is None:
            response = _page(503, "Starting", "The sign-in service is starting; try again in a moment.")
        elif handler is None:
            response = _page(404, "Not found", "There is no such page.")
        else:
            response = handler(request)
        return response(environ, start_response)

    @staticmethod
    def _public_json(body: dict[str, Any]) -> Response:
        response = Response(_json(body), content_type="application/json")
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def _authorize(self, request: Request) -> Response:
        query = request.args
        client = self._clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        # An unknown client or redirect URI gets a page, never a redirect (no open redirector).
        if client is None:
            return _page(
                400, "Sign-in refused", "This application is not registered here (unknown client_id)."
            )
        if redirect_uri not in client.redirect_uris:
            return _page(400, "Sign-in refused", "This application's redirect_uri is not registered.")
        state = query.get("state")
        if query.get("response_type") != "code":
            return _redirect_error(
                redirect_uri, state, "unsupported_response_type", "only response_type=code"
            )
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or len(challenge) < 43:
            return _redirect_error(redirect_uri, state, "invalid_request", "PKCE with S256 is required")
        scope = query.get("scope", "openid")
        authorization = _AuthorizationRequest(
            client.client_id,
            redirect_uri,
            state,
            query.get("nonce"),
            challenge,
            scope,
            time.time() + LOGIN_TTL_SECONDS,
        )
        # Signed in here already (the hosted UI's session): straight back with a code, unless asked to log in.
        user = self._state.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if user is not None and query.get("prompt") != "login":
            return self._redirect_with_code(authorization, user)
        login_id = secrets.token_urlsafe(24)
        with self._state.lock:
            self._state.logins[login_id] = authorization
        return _login_form(login_id, self._form_targets())

    def _login(self, request: Request) -> Response:
        login_id = request.form.get("login", "")
        with self._state.lock:
            authorization = self._state.logins.get(login_id)
        if authorization is None or authorization.expires_at < time.time():
            return _page(400, "Sign-in expired", "This sign-in page has expired; go back to the application.")
        email = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        assert self._directory is not None
        try:
            user = self._directory.authenticate(email, password) if email and password else None
        except PasswordChangeRequiredError:
            return _login_form(
                login_id,
                self._form_targets(),
                "This account still has its temporary password; set a password with "
                "`rostersync admin invite --password` on the local stack.",
            )
        if user is None:
            return _login_form(login_id, self._form_targets(), WRONG_CREDENTIALS, email)
        with self._state.lock:
            self._state.logins.pop(login_id, None)
        session = secrets.token_urlsafe(32)
        self._state.sessions[session] = user
        response = self._redirect_with_code(authorization, user)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Lax", path="/")
        return response

    def _redirect_with_code(self, authorization: _AuthorizationRequest, user: User) -> Response:
        code = secrets.token_urlsafe(32)
        with self._state.lock:
            self._state.codes[code] = _IssuedCode(authorization, user, time.time() + CODE_TTL_SECONDS)
        parameters = {"code": code, **({"state": authorization.state} if authorization.state else {})}
        return _redirect(f"{authorization.redirect_uri}?{urlencode(parameters)}")

    def _token(self, request: Request) -> Response:
        grant = self._grants.get(request.form.get("grant_type", ""))
        try:
            if grant is None:
                raise OAuthError("unsupported_grant_type", "this grant type is not supported")
            body, status = grant(request), 200
        except OAuthError as error:
            body, status = {"error": error.error, "error_description": error.description}, error.status
        response = Response(_json(body), status=status, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        self._allow_client_origin(request, response)
        return response

    def _grant_authorization_code(self, request: Request) -> dict[str, Any]:
        form = request.form
        with self._state.lock:
            # Spent on first use, whatever follows: a replayed code never works.
            issued = self._state.codes.pop(form.get("code", ""), None)
        if issued is None or issued.expires_at < time.time():
            raise OAuthError("invalid_grant", "the authorization code is unknown, expired or already used")
        wanted = issued.request
        if form.get("client_id") != wanted.client_id or form.get("redirect_uri") != wanted.redirect_uri:
            raise OAuthError("invalid_grant", "the code was issued to another client or redirect_uri")
        if not hmac.compare_digest(_s256(form.get("code_verifier", "")), wanted.code_challenge):
            raise OAuthError("invalid_grant", "the code_verifier does not match the code_challenge")
        refresh_token = secrets.token_urlsafe(48)
        with self._state.lock:
            self._state.refresh_grants[refresh_token] = _RefreshGrant(
                wanted.client_id, issued.user.email, wanted.scope
            )
        return {
            **self._tokens(issued.user, wanted.client_id, wanted.scope, wanted.nonce),
            "refresh_token": refresh_token,
        }

    def _grant_refresh_token(self, request: Request) -> dict[str, Any]:
        grant = self._state.refresh_grants.get(request.form.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != request.form.get("client_id"):
            raise OAuthError("invalid_grant", "the refresh token is unknown or revoked")
        assert self._directory is not None
        user = self._directory.user(grant.email)
        if user is None:
            raise OAuthError("invalid_grant", "the user no longer exists or is disabled")
        return self._tokens(user, grant.client_id, grant.scope, None)

    # -- machine clients ------------------------------------------------------------------------------
    def _machine_client(self, request: Request) -> dict[str, Any] | None:
        """The app client that HTTP Basic authentication names, when it has a secret and this is it."""
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        assert self._directory is not None
        client = self._directory.app_client(client_id) if client_id else None
        expected = str((client or {}).get("ClientSecret", ""))
        if not expected or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        return client

    def machine_token(self, client_id: str, scope: str) -> str:
        """The access token the client-credentials grant gives, as Cognito's: the client is its own subject
        and `client_id`, with no `aud` (API Gateway then checks `client_id` against its audience)."""
        return self.access_token(client_id, client_id, scope=scope)

    def _grant_client_credentials(self, request: Request) -> dict[str, Any]:
        """RFC 6749 4.4 as Cognito answers it: an app client with a secret (moto's), authenticated with HTTP
        Basic, allowed this grant and the scopes it asks for (all it is allowed when it asks none)."""
        client = self._machine_client(request)
        if client is None:
            raise OAuthError("invalid_client", "the client id or secret is wrong", 401)
        if "client_credentials" not in client.get("AllowedOAuthFlows", []) or not client.get(
            "AllowedOAuthFlowsUserPoolClient"
        ):
            raise OAuthError("unauthorized_client", "this client may not use the client-credentials grant")
        allowed = set(client.get("AllowedOAuthScopes", []))
        asked = set(request.form["scope"].split()) if "scope" in request.form else allowed
        if not asked or not asked <= allowed:
            raise OAuthError("invalid_scope", "the client may not ask for these scopes")
        scope = " ".join(sorted(asked))
        return {
            "access_token": self.machine_token(str(client["ClientId"]), scope),
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
            "scope": scope,
        }

    def _tokens(self, user: User, client_id: str, scope: str, nonce: str | None) -> dict[str, Any]:
        return {
            "access_token": self.access_token(
                user.subject, client_id, username=user.subject, groups=user.groups, scope=scope
            ),
            "id_token": self._id_token(user, client_id, nonce),
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
        }

    def _revoke(self, request: Request) -> Response:
        grant = self._state.refresh_grants.get(request.form.get("token", ""))
        if grant is not None and grant.client_id == request.form.get("client_id"):
            grant.revoked = True
        response = Response("", status=200)  # RFC 7009: the same answer for an unknown token
        self._allow_client_origin(request, response)
        return response

    def _logout(self, request: Request) -> Response:
        client = self._clients.get(request.args.get("client_id", ""))
        target = request.args.get("logout_uri") or request.args.get("post_logout_redirect_uri", "")
        if client is None or target not in client.logout_uris:
            return _page(400, "Sign-out refused", "This application's logout_uri is not registered.")
        self._state.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = _redirect(target)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def _form_targets(self) -> str:
        return " ".join(sorted({origin for client in self._clients.values() for origin in client.origins}))

    def _allow_client_origin(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin", "")
        if any(origin in client.origins for client in self._clients.values()):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body)


def _redirect(location: str) -> Response:
    response = Response("", status=302)
    response.headers["Location"] = location
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect_error(redirect_uri: str, state: str | None, error: str, description: str) -> Response:
    parameters = {"error": error, "error_description": description, **({"state": state} if state else {})}
    return _redirect(f"{redirect_uri}?{urlencode(parameters)}")


def _page(status: int, title: str, message: str, body: str = "", form_targets: str = "") -> Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} - rostersync sign-in</title>"
        "<style>body{font-family:sans-serif;max-width:26rem;margin:3rem auto}"
        "label{display:block;margin:.6rem 0}input{display:block;width:100%}.error{color:#a00}</style></head>"
        f"<body><main><h1>{escape(title)}</h1><p class='{'error' if status >= 400 else 'hint'}' role='alert'>"
        f"{escape(message)}</p>{body}</main></body></html>"
    )
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = PAGE_POLICY.format(form_targets).replace(" ;", ";")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _login_form(login_id: str, form_targets: str, error: str = "", email: str = "") -> Response:
    form = (
        "<form method='post' action='/login'>"
        f"<input type='hidden' name='login' value='{escape(login_id)}'>"
        "<label for='username'>Email</label>"
        "<input id='username' name='username' type='email' autocomplete='username' required"
        f" value='{escape(email)}'>"
        "<label for='password'>Password</label>"
        "<input id='password' name='password' type='password' autocomplete='current-password' required>"
        "<p><button type='submit'>Sign in</button></p></form>"
    )
    message = error or "Sign in with your email and password."
    return _page(400 if error else 200, "Sign in to rostersync", message, form, form_targets)

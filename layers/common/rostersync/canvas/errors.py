"""Canvas failures, classified by what the caller should do about them. Messages never hold secrets."""

from __future__ import annotations


class CanvasError(Exception):
    """Canvas answered with an error, or could not be reached."""

    code = "canvas_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CanvasUnavailableError(CanvasError):
    """5xx, timeouts, connection failures and throttling that outlasted our retries: try again later."""

    code = "canvas_unavailable"
    retryable = True


class CanvasWriteUncertainError(CanvasUnavailableError):
    """A POST or PUT met a 5xx, a timeout or a dropped connection: Canvas may or may not have applied it.

    Writes are never re-sent blind: the caller reads Canvas again and sends only what is still missing.
    """

    code = "canvas_write_uncertain"


class CanvasNotFoundError(CanvasError):
    code = "canvas_not_found"


class InsufficientScopeError(CanvasError):
    """The developer key does not grant the scope this call needs; retrying cannot help."""

    code = "scope_missing"

    def __init__(self, scope: str) -> None:
        super().__init__(f"the developer key does not grant the scope {scope}", status=401)
        self.scope = scope


class CanvasPermissionError(CanvasError):
    code = "canvas_permission_denied"


class UndeclaredEndpointError(CanvasError):
    """A call outside the scope manifest: a programming error, refused before it leaves."""

    code = "undeclared_endpoint"


class UnsafeCanvasUrlError(CanvasError):
    code = "unsafe_canvas_url"


class AuthorizationError(CanvasError):
    """The tenant's grant is gone (revoked, deleted, wrong client): an admin must authorize again."""

    code = "needs_reauthorization"


class CanvasNotConfiguredError(CanvasError):
    code = "canvas_not_configured"


class OAuthError(CanvasError):
    """The token endpoint refused a request."""

    code = "oauth_error"

    def __init__(self, error: str, description: str, *, status: int | None = None) -> None:
        super().__init__(f"Canvas token endpoint: {error}: {description}", status=status)
        self.error = error
        self.description = description

    @property
    def grant_is_dead(self) -> bool:
        # Canvas answers a deleted refresh token with invalid_request "refresh_token not found".
        return self.error in {"invalid_grant", "invalid_client", "invalid_request", "unauthorized_client"}

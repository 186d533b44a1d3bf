"""Signed live events: the HTTPS intake may receive a JWT (JWS compact serialization) instead of JSON.

Canvas signs with keys published as a JWKS (one JWKS for beta and production at the stack's
`LiveEventsJwksUrl`, rotated monthly, the previous, current and next keys served). The token
header's `kid` selects the key. The algorithm and claim layout are not documented, so this module accepts
only asymmetric signatures (RS256 by default), never "none" or HMAC, and finds the event JSON among the
claims. Crypto is joserfc's; this module only decides what to trust.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, JoseError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from rostersync.events.models import ParsedEvent
from rostersync.events.parse import parse_event

__all__ = [
    "CANVAS_LIVE_EVENTS_JWKS_URL",
    "DEFAULT_ALGORITHMS",
    "DEFAULT_LEEWAY_SECONDS",
    "SignedEventError",
    "SignedEventFailure",
    "decode_signed_event",
    "event_from_claims",
    "looks_like_jwt",
    "parse_signed_event",
    "parse_unverified_signed_event",
    "read_signed_event_unverified",
]

CANVAS_LIVE_EVENTS_JWKS_URL = "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks"
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256",)
DEFAULT_LEEWAY_SECONDS = 60
# Only asymmetric algorithms can be verified against a published JWKS; the key type each one needs.
_KEY_TYPE_FOR_ALGORITHM = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
    **dict.fromkeys(("ES256", "ES384", "ES512"), "EC"),
}
# joserfc's default payload cap (128 kB) is below what a large event (a wiki page body) can reach.
_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
_TIME_CLAIMS = ("exp", "nbf", "iat")

Json = dict[str, Any]


class SignedEventFailure(StrEnum):
    MALFORMED = "malformed"  # not a JWS compact token, or its header/payload is not a JSON object
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"  # "none", HMAC or any algorithm not allowed
    MISSING_KID = "missing_kid"
    UNKNOWN_KID = "unknown_kid"  # no key with that kid in the JWKS (rotated out, or not Canvas's)
    KEY_MISMATCH = "key_mismatch"  # the kid's key does not fit the algorithm or is not a signing key
    INVALID_JWKS = "invalid_jwks"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"  # nbf or iat in the future (beyond the leeway)
    INVALID_CLAIMS = "invalid_claims"  # e.g. a non-numeric exp, or a required exp missing


class SignedEventError(Exception):
    """A signed event was refused; `reason` says why (a `SignedEventFailure`)."""

    def __init__(self, reason: SignedEventFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def looks_like_jwt(text: str) -> bool:
    """Three dot-separated base64url segments whose first one decodes to a JSON header with "alg"."""
    try:
        header, _ = read_signed_event_unverified(text)
    except SignedEventError:
        return False
    return "alg" in header


def _registry(algorithms: Collection[str] | None) -> JWSRegistry:
    registry = JWSRegistry(algorithms=list(algorithms) if algorithms else None, strict_check_header=False)
    registry.max_payload_length = _MAX_PAYLOAD_BYTES
    return registry


def _claims_object(payload: bytes | None) -> Json:
    try:
        claims = json.loads(payload or b"")
    except (ValueError, RecursionError) as error:  # deep nesting raises RecursionError, not ValueError
        raise SignedEventError(SignedEventFailure.MALFORMED, "the payload is not JSON") from error
    if not isinstance(claims, dict):
        raise SignedEventError(SignedEventFailure.MALFORMED, "the payload is not a JSON object")
    return claims


def read_signed_event_unverified(token: str) -> tuple[Json, Json]:
    """The header and claims of a JWT WITHOUT checking its signature. For inspection (the CLI without a
    JWKS) only: never act on the result."""
    try:
        signature = jws.extract_compact(token.strip().encode("utf-8"), registry=_registry(None))
    except (JoseError, ValueError, RecursionError) as error:
        raise SignedEventError(SignedEventFailure.MALFORMED, f"not a JWS compact token: {error}") from error
    return dict(signature.headers()), _claims_object(signature.payload)


def _select_key(jwks: Mapping[str, Any], kid: str, algorithm: str) -> Key:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise SignedEventError(SignedEventFailure.INVALID_JWKS, 'the JWKS has no "keys" list')
    candidates = [key for key in keys if isinstance(key, Mapping) and key.get("kid") == kid]
    if not candidates:
        raise SignedEventError(SignedEventFailure.UNKNOWN_KID, f"no key with kid {kid!r} in the JWKS")
    key_type = _KEY_TYPE_FOR_ALGORITHM[algorithm]
    fitting = [
        key
        for key in candidates
        if key.get("kty") == key_type
        and key.get("use", "sig") == "sig"
        and key.get("alg", algorithm) == algorithm
        and ("key_ops" not in key or "verify" in key["key_ops"])
    ]
    if not fitting:
        raise SignedEventError(
            SignedEventFailure.KEY_MISMATCH,
            f"the key {kid!r} is not a {key_type} signing key for {algorithm}",
        )
    try:
        return JWKRegistry.import_key(dict(fitting[0]))
    except (JoseError, ValueError, TypeError) as error:
        raise SignedEventError(
            SignedEventFailure.INVALID_JWKS, f"the key {kid!r} cannot be used: {error}"
        ) from error


def _check_times(claims: Mapping[str, Any], now: datetime, leeway: int, *, require_exp: bool) -> None:
    if require_exp and claims.get("exp") is None:
        raise SignedEventError(SignedEventFailure.INVALID_CLAIMS, "the token has no exp claim")
    registry = JWTClaimsRegistry(now=int(now.timestamp()), leeway=leeway)
    try:
        registry.validate({name: claims[name] for name in _TIME_CLAIMS if name in claims})
    except ExpiredTokenError as error:
        raise SignedEventError(
            SignedEventFailure.EXPIRED, f"the token expired (exp={claims['exp']})"
        ) from error
    except InvalidClaimError as error:
        value = claims.get(error.claim)
        if error.claim in {"nbf", "iat"} and isinstance(value, (int, float)) and not isinstance(value, bool):
            raise SignedEventError(
                SignedEventFailure.NOT_YET_VALID, f"{error.claim}={value} is in the future"
            ) from error
        raise SignedEventError(SignedEventFailure.INVALID_CLAIMS, f"{error.claim}: {error}") from error


def decode_signed_event(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: datetime | None = None,
    leeway: int | timedelta = DEFAULT_LEEWAY_SECONDS,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
    require_exp: bool = False,
    max_age_without_exp: int | None = None,
) -> Json:
    """Verify a signed live event against a JWKS and return its claims.

    The header's `alg` must be one of `algorithms` (asymmetric only: "none" and HS* are always refused) and
    its `kid` must name a key of the JWKS that fits the algorithm. `exp`, `nbf` and `iat` are checked when
    present (with `leeway` for clock skew); `require_exp` also refuses tokens without `exp`, and
    `max_age_without_exp` those without `exp` issued longer ago than that (by `iat`, else the event's own
    time), so a captured token cannot be replayed for ever.
    Raises SignedEventError with a `SignedEventFailure` reason.
    """
    unsupported = [name for name in algorithms if name not in _KEY_TYPE_FOR_ALGORITHM]
    if unsupported or not algorithms:
        raise ValueError(f"only asymmetric JWS algorithms can be allowed, not {unsupported or 'none'}")
    header, _ = read_signed_event_unverified(token)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in algorithms:
        raise SignedEventError(
            SignedEventFailure.UNSUPPORTED_ALGORITHM,
            f"alg {algorithm!r} is not accepted (allowed: {', '.join(algorithms)})",
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignedEventError(SignedEventFailure.MISSING_KID, "the token header has no kid")
    key = _select_key(jwks, kid, algorithm)
    try:
        verified = jws.deserialize_compact(
            token.strip(), key, algorithms=[algorithm], registry=_registry([algorithm])
        )
    except BadSignatureError as error:
        raise SignedEventError(SignedEventFailure.BAD_SIGNATURE, "the signature does not verify") from error
    except (JoseError, ValueError) as error:
        raise SignedEventError(
            SignedEventFailure.MALFORMED, f"the token cannot be verified: {error}"
        ) from error
    claims = _claims_object(verified.payload)
    seconds = int(leeway.total_seconds()) if isinstance(leeway, timedelta) else int(leeway)
    moment = now or datetime.now(UTC)
    _check_times(claims, moment, seconds, require_exp=require_exp)
    if max_age_without_exp is not None and claims.get("exp") is None:
        _check_age(claims, moment, seconds, max_age_without_exp)
    return claims


def _issued_at(claims: Mapping[str, Any]) -> datetime | None:
    """When the token was made: its `iat`, else the time of the event it carries."""
    issued = claims.get("iat")
    if isinstance(issued, (int, float)) and not isinstance(issued, bool):
        return datetime.fromtimestamp(issued, UTC)
    event = event_from_claims(claims)
    parsed = parse_event(event) if event is not None else None
    return parsed.event.event_time if parsed is not None and parsed.event is not None else None


def _check_age(claims: Mapping[str, Any], now: datetime, leeway: int, max_age: int) -> None:
    issued = _issued_at(claims)
    if issued is None:
        raise SignedEventError(
            SignedEventFailure.INVALID_CLAIMS, "the token has no exp, and no iat or event time bounds its age"
        )
    age = (now - issued).total_seconds()
    if age > max_age + leeway:
        raise SignedEventError(
            SignedEventFailure.EXPIRED,
            f"the token has no exp and was issued {int(age)} s ago (at most {max_age} s is accepted)",
        )
    if age < -leeway:
        raise SignedEventError(SignedEventFailure.NOT_YET_VALID, "the event's time is in the future")


def _looks_like_event(value: Any) -> bool:
    return isinstance(value, Mapping) and (
        isinstance(value.get("metadata"), Mapping) or isinstance(value.get("data"), list)
    )


def event_from_claims(claims: Mapping[str, Any]) -> Json | None:
    """The live event inside a token's claims: the claims themselves (Canvas {metadata, body} or a Caliper
    envelope next to the JWT claims), or one claim holding it as an object or a JSON string."""
    if _looks_like_event(claims):
        return dict(claims)
    for value in claims.values():
        candidate = value
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                candidate = json.loads(value)
            except ValueError:
                continue
        if _looks_like_event(candidate):
            return dict(candidate)
    return None


def _parse_claims(claims: Mapping[str, Any], *, verified: bool) -> ParsedEvent:
    event = event_from_claims(claims)
    if event is None:
        keys = ", ".join(sorted(claims)) or "none"
        parsed = ParsedEvent(
            status="invalid", reason=f"no Canvas or Caliper event in the token's claims ({keys})"
        )
    else:
        parsed = parse_event(event)
    return parsed.model_copy(update={"verified": verified})


def parse_signed_event(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: datetime | None = None,
    leeway: int | timedelta = DEFAULT_LEEWAY_SECONDS,
    algorithms: Collection[str] = DEFAULT_ALGORITHMS,
) -> ParsedEvent:
    """Verify, then parse: a refused token is "invalid" with the refusal reason. Never raises."""
    try:
        claims = decode_signed_event(token, jwks, now=now, leeway=leeway, algorithms=algorithms)
    except SignedEventError as error:
        return ParsedEvent(status="invalid", reason=f"signature refused: {error}", verified=False)
    return _parse_claims(claims, verified=True)


def parse_unverified_signed_event(token: str) -> ParsedEvent:
    """Parse a signed event WITHOUT verifying it (the CLI without --jwks). The result says
    `"verified": false` in its reason and `verified=False`."""
    note = 'signature not checked ("verified": false): no JWKS given'
    try:
        _, claims = read_signed_event_unverified(token)
    except SignedEventError as error:
        return ParsedEvent(status="invalid", reason=f"{error}; {note}", verified=False)
    parsed = _parse_claims(claims, verified=False)
    reason = f"{parsed.reason}; {note}" if parsed.reason else note
    return parsed.model_copy(update={"reason": reason})

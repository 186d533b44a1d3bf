"""Signed live events (JWT/JWS against a JWKS): what is accepted and each refusal with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from rostersync.events.signing import (
    SignedEventError,
    SignedEventFailure,
    decode_signed_event,
    event_from_claims,
    looks_like_jwt,
    parse_signed_event,
    parse_unverified_signed_event,
    read_signed_event_unverified,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live_events"
NOW = datetime(2024, 11, 1, 12, 0, tzinfo=UTC)
KID = "canvas-2024-11"


class Signer:
    """An RSA key pair generated for the test, its public JWKS and a token factory."""

    def __init__(self, kid: str = KID) -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = RSAKey.import_key(self.private_key)

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.jwk.as_dict(private=False))
        data.update({"kid": self.kid, "use": "sig", "alg": "RS256", **extra})
        return data

    def jwks(self, **extra: Any) -> dict[str, Any]:
        return {"keys": [self.public_jwk(**extra)]}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode({"alg": "RS256", "kid": self.kid, **header}, claims, self.jwk)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def event_claims(lifetime: timedelta | None = timedelta(minutes=5), **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(
        (FIXTURES / "canvas/enrollment_created.json").read_text(encoding="utf-8")
    )
    claims["iat"] = int(NOW.timestamp())
    if lifetime is not None:
        claims["exp"] = int((NOW + lifetime).timestamp())
    claims.update(extra)
    return claims


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def other_signer() -> Signer:
    return Signer()  # same kid, different key


def refusal(token: str, jwks: dict[str, Any], **options: Any) -> SignedEventError:
    with pytest.raises(SignedEventError) as caught:
        decode_signed_event(token, jwks, now=options.pop("now", NOW), **options)
    return caught.value


# -- accepted --------------------------------------------------------------------------------------------
def test_a_valid_token_is_accepted_and_returns_its_claims(signer: Signer) -> None:
    claims = event_claims()
    assert decode_signed_event(signer.token(claims), signer.jwks(), now=NOW) == claims


def test_the_key_is_chosen_by_kid_among_rotating_keys(signer: Signer) -> None:
    previous, following = Signer(kid="canvas-2024-10"), Signer(kid="canvas-2024-12")
    jwks = {"keys": [previous.public_jwk(), signer.public_jwk(), following.public_jwk()]}
    assert decode_signed_event(signer.token(event_claims()), jwks, now=NOW)["body"]["enrollment_id"]
    assert decode_signed_event(following.token(event_claims()), jwks, now=NOW)["metadata"]


def test_a_key_without_use_or_alg_is_accepted(signer: Signer) -> None:
    jwk = signer.public_jwk()
    del jwk["use"], jwk["alg"]
    assert decode_signed_event(signer.token(event_claims()), {"keys": [jwk]}, now=NOW)


def test_a_token_just_past_exp_is_accepted_within_the_leeway(signer: Signer) -> None:
    token = signer.token(event_claims(lifetime=timedelta(seconds=-30)))
    assert decode_signed_event(token, signer.jwks(), now=NOW, leeway=60)
    assert refusal(token, signer.jwks(), leeway=timedelta(seconds=10)).reason is SignedEventFailure.EXPIRED


def test_a_token_without_exp_is_accepted_unless_exp_is_required(signer: Signer) -> None:
    token = signer.token(event_claims(lifetime=None))
    assert decode_signed_event(token, signer.jwks(), now=NOW)
    assert refusal(token, signer.jwks(), require_exp=True).reason is SignedEventFailure.INVALID_CLAIMS


def test_parse_signed_event_verifies_then_normalises(signer: Signer) -> None:
    parsed = parse_signed_event(signer.token(event_claims()), signer.jwks(), now=NOW)
    assert (parsed.status, parsed.verified, parsed.reason) == ("ok", True, None)
    assert parsed.event is not None and parsed.event.enrollment_id == 46825


def test_an_event_nested_in_a_claim_is_found(signer: Signer) -> None:
    event = json.loads((FIXTURES / "caliper/enrollment_created.json").read_text(encoding="utf-8"))
    for claims in ({"iss": "canvas", "event": event}, {"iss": "canvas", "payload": json.dumps(event)}):
        assert event_from_claims(claims) == event
        parsed = parse_signed_event(
            signer.token({**claims, "exp": int(NOW.timestamp()) + 60}), signer.jwks(), now=NOW
        )
        assert parsed.status == "ok" and parsed.event is not None and parsed.event.format == "caliper"


def test_claims_without_an_event_are_invalid(signer: Signer) -> None:
    parsed = parse_signed_event(signer.token({"iss": "canvas", "sub": "x"}), signer.jwks(), now=NOW)
    assert (parsed.status, parsed.verified) == ("invalid", True)
    assert parsed.reason == "no Canvas or Caliper event in the token's claims (iss, sub)"


# -- refused ---------------------------------------------------------------------------------------------
def test_a_tampered_payload_is_refused(signer: Signer) -> None:
    head, _, signature = signer.token(event_claims()).split(".")
    forged = event_claims()
    forged["body"]["user_id"] = "21070000000000666"
    token = f"{head}.{b64url(json.dumps(forged).encode())}.{signature}"
    error = refusal(token, signer.jwks())
    assert error.reason is SignedEventFailure.BAD_SIGNATURE
    assert str(error) == "bad_signature: the signature does not verify"


def test_a_token_signed_by_another_key_under_the_same_kid_is_refused(
    signer: Signer, other_signer: Signer
) -> None:
    assert (
        refusal(other_signer.token(event_claims()), signer.jwks()).reason is SignedEventFailure.BAD_SIGNATURE
    )


def test_an_unknown_kid_is_refused(signer: Signer) -> None:
    error = refusal(signer.token(event_claims(), kid="rotated-away"), signer.jwks())
    assert error.reason is SignedEventFailure.UNKNOWN_KID
    assert "rotated-away" in error.detail


def test_a_missing_kid_is_refused_even_with_a_single_key(signer: Signer) -> None:
    token = jwt.encode({"alg": "RS256"}, event_claims(), signer.jwk)
    assert refusal(token, signer.jwks()).reason is SignedEventFailure.MISSING_KID


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(signer: Signer, alg: str) -> None:
    token = unsigned_token({"alg": alg, "kid": KID}, event_claims())
    assert refusal(token, signer.jwks()).reason is SignedEventFailure.UNSUPPORTED_ALGORITHM


def test_hs256_signed_with_the_public_key_is_refused(signer: Signer) -> None:
    """The algorithm-confusion attack: HMAC keyed with the (public) RSA key material."""
    header = {"alg": "HS256", "kid": KID, "typ": "JWT"}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(event_claims()).encode())
    mac = hmac.new(signer.public_pem(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    error = refusal(f"{head}.{body}.{b64url(mac)}", signer.jwks())
    assert error.reason is SignedEventFailure.UNSUPPORTED_ALGORITHM
    assert "HS256" in error.detail


def test_an_algorithm_other_than_the_allowed_ones_is_refused(signer: Signer) -> None:
    token = jwt.encode({"alg": "RS512", "kid": KID}, event_claims(), signer.jwk, algorithms=["RS512"])
    assert refusal(token, signer.jwks()).reason is SignedEventFailure.UNSUPPORTED_ALGORITHM
    jwks = signer.jwks(alg="RS512")
    assert decode_signed_event(token, jwks, now=NOW, algorithms=("RS256", "RS512"))


def test_symmetric_algorithms_cannot_be_allowed() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        decode_signed_event("a.b.c", {"keys": []}, algorithms=("HS256",))


def test_an_expired_token_is_refused(signer: Signer) -> None:
    issued = NOW - timedelta(hours=2)
    token = signer.token(event_claims(lifetime=timedelta(hours=-1), iat=int(issued.timestamp())))
    error = refusal(token, signer.jwks())
    assert error.reason is SignedEventFailure.EXPIRED
    # the same token was fine while it was fresh
    assert decode_signed_event(token, signer.jwks(), now=issued + timedelta(minutes=30))


def test_a_token_not_yet_valid_is_refused(signer: Signer) -> None:
    token = signer.token(event_claims(nbf=int((NOW + timedelta(hours=1)).timestamp())))
    assert refusal(token, signer.jwks()).reason is SignedEventFailure.NOT_YET_VALID


def test_a_non_numeric_exp_is_refused(signer: Signer) -> None:
    token = signer.token(event_claims(lifetime=None, exp="tomorrow"))
    assert refusal(token, signer.jwks()).reason is SignedEventFailure.INVALID_CLAIMS


@pytest.mark.parametrize("extra", [{"use": "enc"}, {"alg": "RS512"}, {"kty": "EC"}, {"key_ops": ["encrypt"]}])
def test_a_key_that_does_not_fit_the_algorithm_is_refused(signer: Signer, extra: dict[str, Any]) -> None:
    token = signer.token(event_claims())
    assert refusal(token, signer.jwks(**extra)).reason is SignedEventFailure.KEY_MISMATCH


@pytest.mark.parametrize("jwks", [{}, {"keys": "nope"}, []])
def test_an_unusable_jwks_is_refused(signer: Signer, jwks: Any) -> None:
    assert refusal(signer.token(event_claims()), jwks).reason is SignedEventFailure.INVALID_JWKS


def test_a_jwk_with_broken_key_material_is_refused(signer: Signer) -> None:
    jwks = signer.jwks(n="not-base64!")
    assert refusal(signer.token(event_claims()), jwks).reason is SignedEventFailure.INVALID_JWKS


@pytest.mark.parametrize("token", ["", "abc", "a.b", "!!.!!.!!", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"])
def test_malformed_tokens_are_refused(signer: Signer, token: str) -> None:
    assert refusal(token, signer.jwks()).reason is SignedEventFailure.MALFORMED


def test_parse_signed_event_turns_refusals_into_invalid_results(signer: Signer) -> None:
    parsed = parse_signed_event(signer.token(event_claims(), kid="other"), signer.jwks(), now=NOW)
    assert (parsed.status, parsed.verified, parsed.event) == ("invalid", False, None)
    assert parsed.reason is not None and parsed.reason.startswith("signature refused: unknown_kid")


# -- unverified reading (CLI without a JWKS) -------------------------------------------------------------
def test_unverified_reading_says_so(other_signer: Signer) -> None:
    parsed = parse_unverified_signed_event(other_signer.token(event_claims()))
    assert (parsed.status, parsed.verified) == ("ok", False)
    assert parsed.reason is not None and '"verified": false' in parsed.reason
    assert parsed.event is not None and parsed.event.user_id == 20064


def test_unverified_reading_of_garbage_is_invalid() -> None:
    parsed = parse_unverified_signed_event("not.a.jwt")
    assert (parsed.status, parsed.verified) == ("invalid", False)
    assert parsed.reason is not None and parsed.reason.startswith("malformed")


def test_read_unverified_returns_header_and_claims(signer: Signer) -> None:
    header, claims = read_signed_event_unverified(signer.token({"a": 1}))
    assert (header["alg"], header["kid"], claims) == ("RS256", KID, {"a": 1})


def test_jwt_detection(signer: Signer) -> None:
    assert looks_like_jwt(signer.token({"a": 1}))
    assert not looks_like_jwt('{"metadata": {}}')
    assert not looks_like_jwt("a.b.c")

"""Bearer-token verification and (for local development) minting."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import jwt

from app.core.settings import Settings
from app.domain.dtos import Principal

#: Tokens larger than this are refused before any parsing: nobody needs an 8 KiB JWT.
MAX_TOKEN_BYTES = 8192


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not ours. Rendered as 401."""


class TokenVerifier(Protocol):
    """What the API needs from an authentication mode: a verified principal, or an error."""

    async def authenticate(self, token: str) -> Principal:
        """Raise `InvalidToken` (401) or `Unavailable` (503, identity provider unreachable)."""
        ...


class LocalTokens:
    """HS256 tokens signed with `AUTH_SECRET`: the zero-setup mode for development and tests."""

    algorithms = ("HS256",)

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.auth_secret
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._leeway = settings.auth_leeway_s
        self._ttl = settings.auth_token_ttl_s

    def mint(self, subject: str, *, email: str | None = None, ttl_s: int | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + (ttl_s if ttl_s is not None else self._ttl),
        }
        if email is not None:
            claims["email"] = email
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token is too large")
        return decode_principal(
            token,
            self._secret,
            algorithms=list(self.algorithms),
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
        )

    async def authenticate(self, token: str) -> Principal:
        return self.verify(token)


def decode_principal(
    token: str,
    key: Any,
    *,
    algorithms: list[str],
    audience: str,
    issuer: str,
    leeway: float,
    email_claim: str = "email",
) -> Principal:
    """Verify signature, `exp`, `iss`, `aud` (all required, with `sub`) and name the principal.
    The algorithms are the caller's pinned list, never the token header's."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    return principal_from_claims(claims, email_claim)


def principal_from_claims(claims: dict[str, Any], email_claim: str = "email") -> Principal:
    """The principal a verified token names.

    The e-mail is informational (ownership always follows `sub`); one the provider explicitly
    marks unverified (`email_verified: false`) is ignored so nobody can squat an address."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise InvalidToken("token subject (sub) must be a non-empty string of at most 255 chars")
    if "\x00" in subject:
        raise InvalidToken("token subject (sub) contains NUL")
    email = claims.get(email_claim)
    if not isinstance(email, str) or not email or len(email) > 320 or "\x00" in email:
        email = None
    if claims.get("email_verified") is False:
        email = None
    exp = claims.get("exp")
    expires_at = float(exp) if isinstance(exp, int | float) else None
    return Principal(subject=subject, email=email, expires_at=expires_at)


class RememberedTokens:
    """Remembers the tokens a verifier accepted, until they expire: a client's next request
    costs a dictionary lookup instead of a signature check (and, in OIDC mode, a key lookup).

    Bounded (least recently used entries go first). Only accepted tokens are remembered, never
    past their `exp` (the leeway applies only when a token is verified again), so nothing is
    accepted that the verifier would refuse, except a token signed by a key the provider has
    since withdrawn, until it expires: JWTs cannot be revoked earlier anyway.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self._capacity = capacity
        self._clock = clock
        self._accepted: OrderedDict[str, Principal] = OrderedDict()

    async def authenticate(self, token: str) -> Principal:
        known = self._accepted.get(token)
        if known is not None and known.expires_at is not None:
            if known.expires_at > self._clock():
                self._accepted.move_to_end(token)
                return known
            del self._accepted[token]
        principal = await self.verifier.authenticate(token)
        if principal.expires_at is not None:
            self._accepted[token] = principal
            if len(self._accepted) > self._capacity:
                self._accepted.popitem(last=False)
        return principal

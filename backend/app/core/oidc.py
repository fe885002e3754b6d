"""OIDC resource server: verify access tokens from Auth0 (or any OIDC provider) against its JWKS.

The provider's keys are fetched over HTTP and cached. The rules that keep it safe and available:

- the algorithms are pinned in configuration (asymmetric only) and the token header can only pick
  among them, so `alg: none` and HS256-signed-with-the-public-key are refused before any lookup;
- a cached key is used straight away; after the TTL the key set is refreshed *in the background*,
  so a slow or dead provider never stalls requests signed by keys we already hold;
- an unknown `kid` (a rotated key) triggers one refetch, shared by every request waiting for it
  (an asyncio lock) and rate-limited, so a flood of random `kid`s costs the provider one request
  per interval; if the provider cannot be reached, tokens needing a new key get 503, not 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import jwt

from app.core import metrics
from app.core.security import MAX_TOKEN_BYTES, InvalidToken, decode_principal
from app.core.settings import Settings
from app.domain.dtos import Principal
from app.domain.errors import Unavailable

log = logging.getLogger(__name__)

#: A JWKS or discovery document larger than this is not a key set we want to parse.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_KID_CHARS = 256


class JwksError(Exception):
    """The provider's discovery document or key set could not be fetched or understood."""


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class JwksCache:
    """The provider's signing keys by `kid`, refreshed on a TTL and on unknown key ids."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        algorithms: Sequence[str],
        ttl_s: float,
        refresh_interval_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._algorithms = tuple(algorithms)
        self._ttl_s = ttl_s
        self._refresh_interval_s = refresh_interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf
        self._last_attempt = -math.inf
        self._last_failed = False
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        #: How many times the provider was asked for keys (observable by tests and metrics).
        self.fetches = 0

    async def key(self, kid: str) -> jwt.PyJWK:
        """The verification key for `kid`; `InvalidToken` if the provider has no such key."""
        key = self._keys.get(kid)
        if key is not None:
            if self._clock() - self._fetched_at >= self._ttl_s:
                self._refresh_in_background()
            return key
        async with self._lock:
            # Whoever held the lock before us may have fetched exactly this key.
            key = self._keys.get(kid)
            if key is not None:
                return key
            if not self._may_fetch():
                if self._last_failed:
                    raise Unavailable("the identity provider's key set cannot be fetched")
                raise InvalidToken("the token's signing key (kid) is unknown")
            await self._refresh_locked()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("the token's signing key (kid) is unknown")
        return key

    def _may_fetch(self) -> bool:
        return self._clock() - self._last_attempt >= self._refresh_interval_s

    def _refresh_in_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._background_refresh())

    async def _background_refresh(self) -> None:
        async with self._lock:
            if self._clock() - self._fetched_at < self._ttl_s or not self._may_fetch():
                return
            # A failure is logged by _refresh_locked; the cached keys keep serving meanwhile.
            with contextlib.suppress(Unavailable):
                await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            keys = await self._fetch()
        except (JwksError, httpx.HTTPError, ValueError) as exc:
            self._last_failed = True
            metrics.JWKS_FETCHES.labels("error").inc()
            log.warning("cannot refresh the OIDC key set: %r", exc)
            raise Unavailable("the identity provider's key set cannot be fetched") from exc
        metrics.JWKS_FETCHES.labels("ok").inc()
        self._keys = keys
        self._fetched_at = self._clock()
        self._last_failed = False

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        async with httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as client:
            if self._jwks_url is None:
                config = await _get_json(client, discovery_url(self._issuer))
                if config.get("issuer") != self._issuer:
                    raise JwksError("the discovery document names another issuer")
                jwks_uri = config.get("jwks_uri")
                if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https:", "http:")):
                    raise JwksError("the discovery document has no usable jwks_uri")
                self._jwks_url = jwks_uri
            document = await _get_json(client, self._jwks_url)
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise JwksError("the JWKS document has no `keys` list")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries:
            kid, key = self._usable_key(entry)
            if key is not None:
                keys[kid] = key
        if not keys:
            raise JwksError("the JWKS holds no signing key for the configured algorithms")
        return keys

    def _usable_key(self, entry: object) -> tuple[str, jwt.PyJWK | None]:
        """A signing key for one of our algorithms, or None for anything else in the set."""
        if not isinstance(entry, dict):
            return "", None
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            return "", None
        declared = entry.get("alg")
        candidates = [declared] if isinstance(declared, str) else list(self._algorithms)
        for algorithm in candidates:
            if algorithm not in self._algorithms:
                continue
            try:
                return kid, jwt.PyJWK(entry, algorithm=algorithm)
            except jwt.PyJWTError:
                continue
        return kid, None


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """GET a JSON object, refusing documents over MAX_DOCUMENT_BYTES while reading them."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise JwksError(f"{url} answered with more than {MAX_DOCUMENT_BYTES} bytes")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise JwksError(f"{url} did not answer with a JSON object")
    return document


class OidcTokens:
    """`AUTH_MODE=oidc`: access tokens signed by the provider, for our audience."""

    def __init__(self, settings: Settings, *, jwks: JwksCache | None = None) -> None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("AUTH_MODE=oidc needs OIDC_ISSUER and OIDC_AUDIENCE")
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._algorithms = list(settings.oidc_algorithms)
        self._leeway = settings.auth_leeway_s
        self._email_claim = settings.oidc_email_claim
        self.jwks = jwks or JwksCache(
            issuer=settings.oidc_issuer,
            jwks_url=settings.oidc_jwks_url,
            algorithms=self._algorithms,
            ttl_s=settings.oidc_jwks_ttl_s,
            refresh_interval_s=settings.oidc_jwks_refresh_interval_s,
            timeout_s=settings.oidc_http_timeout_s,
        )

    async def authenticate(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token is too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        # Checked before any key lookup: junk and downgrade attempts never reach the provider.
        if header.get("alg") not in self._algorithms:
            raise InvalidToken(f"the token's algorithm is not one of {self._algorithms}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS:
            raise InvalidToken("the token header has no usable key id (kid)")
        key = await self.jwks.key(kid)
        return decode_principal(
            token,
            key,
            algorithms=self._algorithms,
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            email_claim=self._email_claim,
        )

"""A stand-in OIDC provider: a real HTTP server on 127.0.0.1 serving discovery and JWKS documents,
and the Authorization Code flow with PKCE for a public client (the chat page).

Tests hold the private keys, so they can sign tokens, rotate keys, take the server down or make
it hang, and count how often the resource server asked for keys. `/authorize` signs in
`login_subject` at once (no login form) and redirects back with a code; `/token` trades the code
for an access token only with the matching `code_verifier` (S256), client id and redirect URI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "https://api.agent-stack.test"
HANG_LIMIT_S = 10.0


@dataclass(frozen=True)
class PendingCode:
    """An authorization code handed out by `/authorize`, waiting for its `/token` exchange."""

    client_id: str
    redirect_uri: str
    challenge: str


def s256(verifier: str) -> str:
    """PKCE's S256 code challenge of a verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> SigningKey:
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if algorithm.startswith("ES"):
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid=uuid.uuid4().hex, algorithm=algorithm, private=private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


class FakeProvider:
    def __init__(self) -> None:
        self.keys: list[SigningKey] = [SigningKey.generate()]
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.hang = False
        self.release = threading.Event()
        self._lock = threading.Lock()
        #: Who `/authorize` signs in, and the codes it handed out (each usable once).
        self.login_subject = "oidc|pkce-user"
        self.codes: dict[str, PendingCode] = {}
        #: The `/token` requests that were refused, with why (for assertions).
        self.refusals: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider._serve(self)

            def do_POST(self) -> None:
                provider._serve(self)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}.well-known/jwks.json"

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.hits[request.path] += 1
            self.in_flight += 1
        try:
            if self.hang:
                self.release.wait(HANG_LIMIT_S)
            path = urlsplit(request.path).path
            status = 200
            if path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {
                    "issuer": self.issuer,
                    "jwks_uri": self.jwks_url,
                    "authorization_endpoint": f"{self.issuer}authorize",
                    "token_endpoint": f"{self.issuer}oauth/token",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                }
            elif path == "/.well-known/jwks.json":
                body = {"keys": [key.jwk() for key in self.keys]}
            elif path == "/authorize" and request.command == "GET":
                self._authorize(request)
                return
            elif path == "/oauth/token" and request.command == "POST":
                status, body = self._token(request)
            else:
                request.send_error(404)
                return
            payload = json.dumps(body).encode()
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            # A browser page of another origin reads discovery and token answers (as at Auth0).
            request.send_header("Access-Control-Allow-Origin", "*")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _authorize(self, request: BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        if (
            query.get("response_type") != "code"
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
            or not query.get("redirect_uri")
            or not query.get("client_id")
        ):
            request.send_error(400, "an S256 authorization code request is required")
            return
        code = secrets.token_urlsafe(16)
        self.codes[code] = PendingCode(
            query["client_id"], query["redirect_uri"], query["code_challenge"]
        )
        back = urlencode({"code": code, "state": query.get("state", "")})
        request.send_response(302)
        request.send_header("Location", f"{query['redirect_uri']}?{back}")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _token(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        length = int(request.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(request.rfile.read(length).decode()).items()}
        pending = self.codes.pop(form.get("code", ""), None)
        why = None
        if form.get("grant_type") != "authorization_code" or pending is None:
            why = "unknown or used code"
        elif form.get("client_id") != pending.client_id:
            why = "wrong client"
        elif form.get("redirect_uri") != pending.redirect_uri:
            why = "wrong redirect_uri"
        elif s256(form.get("code_verifier", "")) != pending.challenge:
            why = "code_verifier does not match the challenge"
        if why is not None:
            self.refusals.append(why)
            return 400, {"error": "invalid_grant", "error_description": why}
        token = self.sign(subject=self.login_subject)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 300}

    @property
    def jwks_fetches(self) -> int:
        return self.hits["/.well-known/jwks.json"]

    def rotate(self, algorithm: str = "RS256") -> SigningKey:
        """Replace every key with a new one, the way a provider retires a compromised key."""
        self.keys = [SigningKey.generate(algorithm)]
        return self.keys[0]

    def claims(self, subject: str = "auth0|alice", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": [AUDIENCE, f"{self.issuer}userinfo"],
            "sub": subject,
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self, claims: dict[str, Any] | None = None, *, key: SigningKey | None = None, **kw: Any
    ) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            claims if claims is not None else self.claims(**kw),
            key.private,
            algorithm=key.algorithm,
            headers={"kid": key.kid},
        )

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

"""A stand-in OIDC provider: a real HTTP server on 127.0.0.1 serving discovery and JWKS documents.

Tests hold the private keys, so they can sign tokens, rotate keys, take the server down or make
it hang, and count how often the resource server asked for keys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "https://api.agent-stack.test"
HANG_LIMIT_S = 10.0


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
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
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
            if request.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": self.issuer, "jwks_uri": self.jwks_url}
            elif request.path == "/.well-known/jwks.json":
                body = {"keys": [key.jwk() for key in self.keys]}
            else:
                request.send_error(404)
                return
            payload = json.dumps(body).encode()
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        finally:
            with self._lock:
                self.in_flight -= 1

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

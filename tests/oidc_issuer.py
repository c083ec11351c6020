"""A real, local OIDC issuer for tests.

It generates an RSA-2048 and an EC P-256 signing key, serves the discovery document
(``/.well-known/openid-configuration``) and the JWKS (``/jwks``) over HTTP on 127.0.0.1 from a
background thread, counts how often each is fetched, and mints JWTs with python-jose.

    with OidcIssuer() as issuer:
        token = issuer.token({"groups": ["devs"]}, alg="ES256")

It also builds the tokens an attacker would send (``alg: none``, HS256 signed with the public key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwt

AUDIENCE = "terrakube-test"
ALGORITHMS = ("RS256", "ES256")


class _Omit:
    """Marks a claim to leave out of a token, or a header without ``kid``."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
_DEFAULT: Any = object()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(length, "big"))


@dataclass(frozen=True)
class SigningKey:
    """One key pair of the issuer: ``private_pem`` signs, ``jwk`` is what the JWKS publishes."""

    kid: str
    alg: str
    private_pem: str
    public_pem: str
    jwk: dict[str, str]


def new_rsa_key(kid: str) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()
    jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    return SigningKey(kid, "RS256", _private_pem(private), _public_pem(private), jwk)


def new_ec_key(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
        "crv": "P-256",
        "x": _uint(numbers.x, 32),
        "y": _uint(numbers.y, 32),
    }
    return SigningKey(kid, "ES256", _private_pem(private), _public_pem(private), jwk)


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


class OidcIssuer:
    """Serves discovery + JWKS on ``http://127.0.0.1:<free port>`` until ``close()``."""

    def __init__(self, audience: str = AUDIENCE) -> None:
        self.audience = audience
        self.rsa = new_rsa_key("rsa-" + secrets.token_hex(4))
        self.ec = new_ec_key("ec-" + secrets.token_hex(4))
        self._published: list[SigningKey] = [self.rsa, self.ec]
        self._lock = threading.Lock()
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.jwks_uri = f"{self.url}/jwks"
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-issuer", daemon=True)
        self._thread.start()

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OidcIssuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys ----------------------------------------------------------------------

    def publish(self, key: SigningKey) -> None:
        """Adds a key to the JWKS (a key rotation)."""
        with self._lock:
            self._published.append(key)

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [dict(k.jwk) for k in self._published]}

    def key_for_alg(self, alg: str) -> SigningKey:
        return {"RS256": self.rsa, "ES256": self.ec}[alg]

    # -- tokens --------------------------------------------------------------------

    def claims(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Valid claims for this issuer; an override of ``OMIT`` removes that claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": "user-" + secrets.token_hex(4),
            "email": "jane@example.test",
            "name": "Jane Doe",
            "groups": ["developers"],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides or {})
        return {k: v for k, v in claims.items() if v is not OMIT}

    def token(
        self,
        overrides: dict[str, Any] | None = None,
        *,
        alg: str = "RS256",
        kid: Any = _DEFAULT,
        key: SigningKey | str | None = None,
    ) -> str:
        """A JWT signed by this issuer's key for ``alg`` (or ``key``: a SigningKey or PEM).

        ``kid`` defaults to the signing key's id; ``kid=OMIT`` leaves it out of the header.
        """
        signing = key if key is not None else self.key_for_alg(alg)
        pem = signing.private_pem if isinstance(signing, SigningKey) else signing
        if kid is _DEFAULT:
            kid = signing.kid if isinstance(signing, SigningKey) else self.key_for_alg(alg).kid
        headers = {} if kid is OMIT else {"kid": kid}
        return jwt.encode(self.claims(overrides), pem, algorithm=alg, headers=headers)

    # -- forged tokens -------------------------------------------------------------

    def unsigned_token(self, overrides: dict[str, Any] | None = None) -> str:
        """``alg: none`` with valid claims and an empty signature."""
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = b64url(json.dumps(self.claims(overrides)).encode())
        return f"{header}.{payload}."

    def hs256_with_public_key(self, overrides: dict[str, Any] | None = None) -> str:
        """The key-confusion attack: HS256 whose HMAC secret is the RSA public key PEM.

        (python-jose refuses to HMAC with a PEM, so the token is built by hand.)
        """
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.rsa.kid}).encode())
        payload = b64url(json.dumps(self.claims(overrides)).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = hmac.new(self.rsa.public_pem.encode(), signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(signature)}"

    # -- HTTP ----------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/.well-known/openid-configuration":
                    with issuer._lock:
                        issuer.discovery_fetches += 1
                    self._json(
                        {
                            "issuer": issuer.url,
                            "jwks_uri": issuer.jwks_uri,
                            "id_token_signing_alg_values_supported": list(ALGORITHMS),
                        }
                    )
                elif self.path == "/jwks":
                    with issuer._lock:
                        issuer.jwks_fetches += 1
                    self._json(issuer.jwks())
                else:
                    self.send_error(404)

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        return Handler

"""Encryption at rest for secrets (sensitive variables, sensitive outputs, private keys)."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A distinct 32-byte key per purpose, so the JWT key never doubles as the data key."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret_key.encode())


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        key = base64.urlsafe_b64encode(derive_key(secret_key, "terrakube/data-encryption"))
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError("ciphertext cannot be decrypted with this secret key") from None

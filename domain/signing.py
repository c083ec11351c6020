"""OpenPGP keys and detached signatures for provider releases, through the ``gpg`` command.

Every operation runs in a private, throw-away ``GNUPGHOME``: the platform never keeps a keyring,
the private key only exists (decrypted) inside that directory for the duration of one call, and
the agent gpg starts for it is stopped before the directory is removed. Terraform verifies the
binary detached signature of ``SHA256SUMS`` against the ASCII-armored public key we serve.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

GPG = "gpg"
TIMEOUT = 120.0  # an RSA-4096 key takes a few seconds to generate; nothing takes minutes


class SigningError(Exception):
    """gpg failed or refused the key; the message is safe to show."""


@dataclass(frozen=True)
class KeyMaterial:
    key_id: str  # the 16-hex-digit long key id, upper case (what terraform prints)
    fingerprint: str
    public_armor: str
    private_armor: str


def gpg_available() -> bool:
    return shutil.which(GPG) is not None


@contextmanager
def _home() -> Iterator[Path]:
    # Short path under the system temp dir: gpg-agent's socket path must fit in sun_path.
    home = Path(tempfile.mkdtemp(prefix="tk-gpg-"))
    os.chmod(home, 0o700)
    try:
        yield home
    finally:
        try:
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "all"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            pass
        shutil.rmtree(home, ignore_errors=True)


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    argv = [GPG, "--homedir", str(home), "--batch", "--yes", "--no-tty", "--quiet",
            "--pinentry-mode", "loopback", "--passphrase", "", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GNUPG", "GPG_"))}
    env["GNUPGHOME"] = str(home)
    try:
        done = subprocess.run(argv, input=input, capture_output=True, env=env, timeout=TIMEOUT)
    except FileNotFoundError:
        raise SigningError("the gpg command is not installed on the API server") from None
    except subprocess.TimeoutExpired:
        raise SigningError(f"gpg {args[0]} timed out") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SigningError(f"gpg {args[0]} failed: {message[-1] if message else 'exit code ' + str(done.returncode)}")
    return done.stdout


def _secret_keys(home: Path) -> list[tuple[str, str, str]]:
    """(long key id, fingerprint, capabilities) of every secret primary key in the home."""
    out = _gpg(home, "--with-colons", "--fixed-list-mode", "--list-secret-keys").decode()
    keys: list[tuple[str, str, str]] = []
    current: list[str] | None = None
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            current = [fields[4].upper(), "", fields[11] if len(fields) > 11 else ""]
            keys.append(current)  # type: ignore[arg-type]
        elif fields[0] == "fpr" and current is not None and not current[1]:
            current[1] = fields[9].upper()
    return [tuple(k) for k in keys]  # type: ignore[misc]


def _material(home: Path) -> KeyMaterial:
    keys = _secret_keys(home)
    if not keys:
        raise SigningError("the text holds no private (secret) key; export it with `gpg --armor --export-secret-keys`")
    if len(keys) > 1:
        raise SigningError(f"the text holds {len(keys)} private keys; import exactly one")
    key_id, fingerprint, capabilities = keys[0]
    if "S" not in capabilities.upper():
        raise SigningError(f"the key {key_id} cannot sign")
    # Sign once: a passphrase-protected or expired key fails here, not at the first upload.
    try:
        _gpg(home, "--local-user", fingerprint, "--detach-sign", "--output", "-", input=b"probe")
    except SigningError as exc:
        raise SigningError(
            f"the key {key_id} cannot sign without a passphrase (or has expired); "
            f"use a key that is not passphrase-protected ({exc})"
        ) from None
    public = _gpg(home, "--armor", "--export", fingerprint).decode()
    private = _gpg(home, "--armor", "--export-secret-keys", fingerprint).decode()
    return KeyMaterial(key_id=key_id, fingerprint=fingerprint, public_armor=public, private_armor=private)


def generate_key_sync(name: str, email: str) -> KeyMaterial:
    with _home() as home:
        _gpg(home, "--quick-gen-key", f"{name} <{email}>", "rsa4096", "sign", "never")
        return _material(home)


def import_key_sync(private_armor: str) -> KeyMaterial:
    if "PRIVATE KEY BLOCK" not in private_armor:
        raise SigningError("an ASCII-armored private key is required (-----BEGIN PGP PRIVATE KEY BLOCK-----)")
    with _home() as home:
        try:
            _gpg(home, "--import", input=private_armor.encode())
        except SigningError as exc:
            raise SigningError(f"the key cannot be imported: {exc}") from None
        return _material(home)


def sign_detached_sync(private_armor: str, data: bytes) -> bytes:
    """A binary (not armored) detached signature of ``data``, as terraform expects for SHA256SUMS."""
    with _home() as home:
        _gpg(home, "--import", input=private_armor.encode())
        keys = _secret_keys(home)
        if len(keys) != 1:
            raise SigningError("the stored signing key is unusable")
        return _gpg(home, "--local-user", keys[0][1], "--detach-sign", "--output", "-", input=data)


def sign_many_sync(private_armor: str, payloads: list[bytes]) -> list[bytes]:
    """``sign_detached_sync`` for several documents with one import (key rotation re-signs all)."""
    if not payloads:
        return []
    with _home() as home:
        _gpg(home, "--import", input=private_armor.encode())
        keys = _secret_keys(home)
        if len(keys) != 1:
            raise SigningError("the stored signing key is unusable")
        return [_gpg(home, "--local-user", keys[0][1], "--detach-sign", "--output", "-", input=p) for p in payloads]


def verify_detached_sync(public_armor: str, data: bytes, signature: bytes) -> bool:
    with _home() as home:
        _gpg(home, "--import", input=public_armor.encode())
        sig = home / "data.sig"
        payload = home / "data"
        sig.write_bytes(signature)
        payload.write_bytes(data)
        try:
            _gpg(home, "--verify", str(sig), str(payload))
        except SigningError:
            return False
        return True


# -- async wrappers: gpg runs off the event loop -------------------------------------------------


async def generate_key(name: str, email: str) -> KeyMaterial:
    return await asyncio.to_thread(generate_key_sync, name, email)


async def import_key(private_armor: str) -> KeyMaterial:
    return await asyncio.to_thread(import_key_sync, private_armor)


async def sign_detached(private_armor: str, data: bytes) -> bytes:
    return await asyncio.to_thread(sign_detached_sync, private_armor, data)


async def sign_many(private_armor: str, payloads: list[bytes]) -> list[bytes]:
    return await asyncio.to_thread(sign_many_sync, private_armor, payloads)


async def verify_detached(public_armor: str, data: bytes, signature: bytes) -> bool:
    return await asyncio.to_thread(verify_detached_sync, public_armor, data, signature)

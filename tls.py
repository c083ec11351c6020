"""HTTPS for a newcomer: a self-signed certificate for 127.0.0.1 kept in the data dir, and the CA
bundle (system CAs + that certificate) terraform needs to trust it through ``SSL_CERT_FILE``.

Terraform only talks to registries over HTTPS, on hosts with a dot (``127.0.0.1:8443`` works,
``localhost:8443`` does not), so `terrakube up --self-signed` is the shortest way to a working
``terraform init`` against the platform.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
BUNDLE_FILE = "ca-bundle.pem"
VALID_DAYS = 825  # the longest validity clients still accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)
# Where Debian/Ubuntu, RHEL/Fedora, Alpine and macOS keep the system trust store.
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
)


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path
    bundle: Path  # system CAs + the certificate: what SSL_CERT_FILE should point at
    created: bool  # False when an existing certificate was reused


def _hosts(host: str) -> list[str]:
    hosts = ["127.0.0.1", "localhost"]
    if host and host not in ("0.0.0.0", "::", "") and host not in hosts:
        hosts.append(host)
    return hosts


def _san(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _usable(cert_path: Path, key_path: Path, hosts: list[str]) -> bool:
    """The kept certificate still covers these hosts and is not about to expire."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    return all(name in list(san) for name in _san(hosts))


def create_certificate(hosts: list[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a self-signed server certificate for ``hosts``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Terrakube (self-signed)")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def system_ca_file(exclude: Path | None = None) -> Path | None:
    """The trust store to extend; an ``SSL_CERT_FILE`` the user already set wins (unless it is
    our own bundle, exported from an earlier start)."""
    candidates = [os.environ.get("SSL_CERT_FILE") or "", ssl.get_default_verify_paths().cafile or ""]
    candidates += list(SYSTEM_BUNDLES)
    skip = exclude.resolve() if exclude is not None else None
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).resolve() != skip:
            return Path(candidate)
    return None


def write_bundle(cert_pem: bytes, dest: Path, base: Path | None = None) -> Path:
    """``dest`` = the system trust store (or ``base``) followed by ``cert_pem``."""
    base = base or system_ca_file(exclude=dest)
    parts = []
    if base is not None:
        parts.append(base.read_bytes().rstrip(b"\n") + b"\n")
    parts.append(cert_pem)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(b"".join(parts))
    tmp.replace(dest)
    return dest


def ensure_self_signed(directory: Path, host: str = "127.0.0.1") -> SelfSigned:
    """The certificate in ``directory``, created on first use and kept across restarts."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, bundle_path = directory / CERT_FILE, directory / KEY_FILE, directory / BUNDLE_FILE
    hosts = _hosts(host)
    created = False
    if not _usable(cert_path, key_path, hosts):
        cert_pem, key_pem = create_certificate(hosts)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        cert_path.write_bytes(cert_pem)
        created = True
    write_bundle(cert_path.read_bytes(), bundle_path)
    return SelfSigned(cert=cert_path, key=key_path, bundle=bundle_path, created=created)

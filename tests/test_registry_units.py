"""The registry's pure rules: versions from git tags, protocols, zip checks, signed URLs, the
self-signed certificate, and OpenPGP signatures terraform can verify."""

from __future__ import annotations

import datetime as dt
import ssl
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from domain import semver, signing
from domain.errors import ValidationFailed
from domain.services.modules import version_candidates
from domain.services.providers import check_zip, parse_protocols
from registry.http import UrlSigner
from tests.registry_fixtures import zip_bytes
from tls import ensure_self_signed


@pytest.mark.parametrize(
    ("tag", "prefix", "expected"),
    [
        ("v1.2.0", "", "1.2.0"),
        ("1.2.0", "", "1.2.0"),
        ("V3.0.1", "", "3.0.1"),
        ("v2.0.0-rc.1", "", "2.0.0-rc.1"),
        ("v1.0.0+build.7", "", "1.0.0+build.7"),
        ("vpc-v1.4.0", "vpc-", "1.4.0"),
        ("vpc/1.4.0", "vpc/", "1.4.0"),
        ("v1.4.0", "vpc-", None),  # the prefix is required when set
        ("latest", "", None),
        ("v1.2", "", None),
        ("v01.2.3", "", None),
        ("release-1.0.0", "", None),
        ("1.0.0-", "", None),
    ],
)
def test_versions_from_tags(tag: str, prefix: str, expected: str | None) -> None:
    found = semver.version_from_tag(tag, prefix)
    assert (str(found) if found else None) == expected


def test_semver_precedence_and_latest() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.1.0", "2.0.0-rc.1"]
    assert sorted(reversed(ordered), key=semver.sort_key) == ordered
    assert semver.latest(ordered) == "1.1.0"
    assert semver.latest(ordered, include_prereleases=True) == "2.0.0-rc.1"
    assert semver.latest(["2.0.0-rc.1"]) == "2.0.0-rc.1"  # nothing stable: the pre-release it is
    assert semver.latest([]) is None
    with pytest.raises(ValidationFailed) as refused:
        semver.check_version("v1.0.0")
    assert refused.value.field == "version" and "semantic version" in refused.value.message


def test_one_version_per_tag_highest_first_other_tags_ignored() -> None:
    tags = {"v1.0.0": "a" * 40, "1.0.0": "b" * 40, "v1.1.0": "c" * 40, "latest": "d" * 40, "v2.0.0-rc.1": "e" * 40}
    found = version_candidates(tags, "")
    assert [(c.version, c.tag) for c in found] == [("2.0.0-rc.1", "v2.0.0-rc.1"), ("1.1.0", "v1.1.0"), ("1.0.0", "1.0.0")]


def test_protocols() -> None:
    assert parse_protocols(["6.0"]) == ["6.0"]
    assert parse_protocols(["6,5.0"]) == ["5.0", "6.0"]
    assert parse_protocols(['["5.0", "6.0"]']) == ["5.0", "6.0"]
    assert parse_protocols(["5.0", "5"]) == ["5.0"]
    for bad in ([], [""], ["six"], ["6.0.1"], ["[1"]):
        with pytest.raises(ValidationFailed) as refused:
            parse_protocols(bad)
        assert refused.value.field == "protocols"


def test_zip_must_hold_the_binary(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    good.write_bytes(zip_bytes({"terraform-provider-x_v1.0.0": "#!/bin/sh\n", "LICENSE": "MIT"}))
    check_zip(good, "x", "1.0.0", "linux")
    windows = tmp_path / "win.zip"
    windows.write_bytes(zip_bytes({"terraform-provider-x_v1.0.0.exe": "MZ"}))
    check_zip(windows, "x", "1.0.0", "windows")
    cases = {
        "wrong-version.zip": (zip_bytes({"terraform-provider-x_v1.0.1": ""}), "must contain the provider binary"),
        "nested.zip": (zip_bytes({"bin/terraform-provider-x_v1.0.0": ""}), "at its top level"),
        "empty.zip": (zip_bytes({}), "it holds nothing"),
        "text.zip": (b"just text", "not a zip file"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValidationFailed) as refused:
            check_zip(path, "x", "1.0.0", "linux")
        assert message in refused.value.message, (name, refused.value.message)
    corrupt = tmp_path / "corrupt.zip"
    data = bytearray(zip_bytes({"terraform-provider-x_v1.0.0": "A" * 1000}))
    data[60:70] = b"XXXXXXXXXX"  # inside the stored file data: the CRC no longer matches
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ValidationFailed):
        check_zip(corrupt, "x", "1.0.0", "linux")
    assert zipfile.is_zipfile(corrupt)


def test_signed_urls_expire_and_bind_the_path() -> None:
    signer = UrlSigner("k" * 40, ttl_seconds=60)
    url = signer.sign("/terraform/modules/v1/a/b/c/1.0.0/archive.tar.gz", now=1000.0)
    path, _, query = url.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    assert signer.valid(path, params["expires"], params["signature"], now=1059.0)
    assert not signer.valid(path, params["expires"], params["signature"], now=1061.0)  # expired
    assert not signer.valid(path.replace("1.0.0", "2.0.0"), params["expires"], params["signature"], now=1000.0)
    assert not signer.valid(path, str(int(params["expires"]) + 1000), params["signature"], now=1000.0)
    assert not UrlSigner("other" * 10, 60).valid(path, params["expires"], params["signature"], now=1000.0)
    assert not signer.valid(path, None, None)
    # Build metadata: the URL carries %2B, the server sees the decoded path.
    quoted = signer.sign("/terraform/modules/v1/a/b/c/1.0.0%2Bb1/archive.tar.gz", now=1000.0)
    params = dict(part.split("=", 1) for part in quoted.partition("?")[2].split("&"))
    assert signer.valid("/terraform/modules/v1/a/b/c/1.0.0+b1/archive.tar.gz", params["expires"], params["signature"],
                        now=1000.0)


def test_self_signed_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path / "tls")
    assert first.created and first.cert.exists() and first.key.exists()
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=365)
    bundle = first.bundle.read_bytes()
    assert bundle.endswith(first.cert.read_bytes()) and bundle.count(b"BEGIN CERTIFICATE") > 1  # system CAs too
    # Usable by an ordinary TLS client as its trust anchor.
    ssl.create_default_context(cafile=str(first.bundle))

    again = ensure_self_signed(tmp_path / "tls")
    assert not again.created and again.cert.read_bytes() == first.cert.read_bytes()
    other_host = ensure_self_signed(tmp_path / "tls", host="10.1.2.3")
    assert other_host.created, "a certificate that does not cover the host is replaced"


@pytest.mark.skipif(not signing.gpg_available(), reason="gpg is not installed")
def test_gpg_keys_sign_verifiably_and_bad_keys_are_refused(tmp_path: Path) -> None:
    key = signing.generate_key_sync("Terrakube test", "test@terrakube.invalid")
    assert len(key.key_id) == 16 and key.fingerprint.endswith(key.key_id)
    assert "PUBLIC KEY BLOCK" in key.public_armor and "PRIVATE" not in key.public_armor
    signature = signing.sign_detached_sync(key.private_armor, b"sums\n")
    assert not signature.startswith(b"-----"), "terraform needs a binary signature"
    assert signing.verify_detached_sync(key.public_armor, b"sums\n", signature)
    assert not signing.verify_detached_sync(key.public_armor, b"other\n", signature)
    assert signing.import_key_sync(key.private_armor).fingerprint == key.fingerprint

    with pytest.raises(signing.SigningError, match="private key is required"):
        signing.import_key_sync(key.public_armor)
    with pytest.raises(signing.SigningError):
        signing.import_key_sync("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\ngarbage\n-----END PGP PRIVATE KEY BLOCK-----\n")


def test_tls_flags(tmp_path: Path) -> None:
    import argparse

    from cli import _tls, parser
    from settings import ConfigurationError, Settings

    settings = Settings(data_dir=tmp_path, secret_key="k" * 40)
    args = parser().parse_args(["up", "--self-signed"])
    cert, key, bundle = _tls(args, settings)  # type: ignore[misc]
    assert cert == tmp_path / "tls" / "cert.pem" and key.exists() and bundle is not None
    assert _tls(parser().parse_args(["serve"]), settings) is None
    given = parser().parse_args(["serve", "--tls-cert", str(cert), "--tls-key", str(key)])
    assert _tls(given, settings) == (cert, key, None)
    for argv, message in (
        (["serve", "--tls-cert", str(cert)], "both --tls-cert and --tls-key"),
        (["serve", "--tls-cert", str(cert), "--tls-key", str(tmp_path / "missing.pem")], "does not exist"),
        (["up", "--self-signed", "--tls-cert", str(cert), "--tls-key", str(key)], "--self-signed"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            _tls(parser().parse_args(argv), settings)
    from_env = Settings(data_dir=tmp_path, secret_key="k" * 40, tls_cert_file=cert, tls_key_file=key)
    assert _tls(argparse.Namespace(host="127.0.0.1"), from_env) == (cert, key, None)

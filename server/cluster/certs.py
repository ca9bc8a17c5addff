"""``sidecoach cluster redis-tls DIR --name HOST``: a certificate for the
deployment's Redis, so that ``rediss://`` works without a PKI.

Writes ``DIR/ca.pem`` (a CA made for this Redis only: give it to every
node as ``SIDECOACH_REDIS_TLS_CA``; its private key is not kept, so it
signs nothing else, ever), ``DIR/redis.crt`` and ``DIR/redis.key`` (for
redis.conf's ``tls-cert-file`` / ``tls-key-file``; the key readable by its
owner only). The certificate names every ``--name`` (DNS names or IP
addresses: the host part of the nodes' ``SIDECOACH_REDIS_URL``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.core.errors import ConfigError

#: how long the CA and the certificate are valid
VALID_DAYS = 825


@dataclass(frozen=True)
class RedisTls:
    ca: Path
    cert: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not name or any(c in name for c in " /:@"):
                raise ConfigError(
                    f"--name {name!r}: expected a host name or an IP address"
                ) from None
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_redis_tls(directory: Path, names: list[str]) -> RedisTls:
    """Write a one-purpose CA and Redis's certificate and key into ``directory``."""
    if not names:
        raise ConfigError("--name: give the host name (or IP address) the nodes use for Redis")
    san = _san(names)
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sidecoach Redis CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    out = RedisTls(directory / "ca.pem", directory / "redis.crt", directory / "redis.key")
    _write(out.ca, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(out.key, pem, 0o600)
    return out

"""HTTPS for ``serve``: an ``ssl.SSLContext`` from the admin's certificate
and key, or from a self-signed certificate generated and kept in the data
directory (``--self-signed``: for trying Sidecoach on a school LAN, NOT for
production: every browser warns about it and anyone on the path can offer
their own).

Browsers give a page camera and microphone only in a secure context, so a
teacher's tablet reaching the server by a LAN address needs HTTPS.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import ifaddr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.core.config import Config
from server.core.errors import ConfigError

logger = logging.getLogger(__name__)

#: where ``--self-signed`` keeps its certificate and key, under the data dir
SELF_SIGNED_DIR = "tls"
SELF_SIGNED_CERT = "self-signed-cert.pem"
SELF_SIGNED_KEY = "self-signed-key.pem"
#: a self-signed certificate is valid this long, and made anew this long
#: before it expires (or when a name it must cover is missing)
SELF_SIGNED_VALID_DAYS = 365
SELF_SIGNED_RENEW_DAYS = 30
SELF_SIGNED_ORG = "Sidecoach self-signed, NOT for production"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TlsSetup:
    context: ssl.SSLContext
    cert_path: Path
    #: SHA-256 of the (leaf) certificate, colon-separated hex, as browsers show it
    fingerprint: str
    self_signed: bool


@dataclass(frozen=True)
class CertificateNames:
    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]


def certificate_names(config: Config, *, host_ips: bool = True) -> CertificateNames:
    """Names a self-signed certificate must cover: localhost, this machine's
    hostname, the configured host / public URL / announced ICE address, and
    (``host_ips``) every address of this machine's interfaces."""
    dns: list[str] = ["localhost"]
    ips: list[IPAddress] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    candidates = [socket.gethostname(), config.host, config.ice_announced_ip or ""]
    if config.public_url:
        candidates.append(urlsplit(config.public_url).hostname or "")
    if host_ips:
        for adapter in ifaddr.get_adapters():
            for addr in adapter.ips:
                candidates.append(addr.ip if isinstance(addr.ip, str) else addr.ip[0])
    for name in candidates:
        name = name.strip().lower()
        if not name or name in ("0.0.0.0", "::"):
            continue
        try:
            ip = ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            if name not in dns:
                dns.append(name)
            continue
        if not ip.is_link_local and ip not in ips:
            ips.append(ip)
    return CertificateNames(tuple(dns), tuple(ips))


def sha256_fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _covers(cert: x509.Certificate, names: CertificateNames, now: datetime.datetime) -> bool:
    if cert.not_valid_after_utc - now < datetime.timedelta(days=SELF_SIGNED_RENEW_DAYS):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = {d.lower() for d in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return set(names.dns) <= have_dns and set(names.ips) <= have_ips


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (replacing it) readable by the owner only."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def ensure_self_signed(
    directory: Path, names: CertificateNames, *, now: datetime.datetime | None = None
) -> tuple[Path, Path, bool]:
    """The self-signed certificate and key in ``directory``: the kept ones
    while they cover ``names`` and are not about to expire, else new ones.
    Returns (cert path, key path, whether they were made now)."""
    now = now or datetime.datetime.now(datetime.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY
    if cert_path.is_file() and key_path.is_file():
        try:
            kept = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            logger.warning("replacing unreadable self-signed certificate %s", cert_path)
        else:
            if _covers(kept, names, now):
                return cert_path, key_path, False
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names.dns[-1] if names.dns else "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SELF_SIGNED_ORG),
        ]
    )
    san = x509.SubjectAlternativeName(
        [x509.DNSName(d) for d in names.dns] + [x509.IPAddress(ip) for ip in names.ips]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_VALID_DAYS))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def load_tls(config: Config) -> TlsSetup | None:
    """The TLS setup ``config`` asks for (None: plain HTTP). Generates the
    self-signed certificate if needed; blocking (call it from an executor)."""
    if not config.tls:
        return None
    if config.self_signed:
        names = certificate_names(config)
        cert_path, key_path, made = ensure_self_signed(config.data_dir / SELF_SIGNED_DIR, names)
        if made:
            logger.info("made a self-signed certificate %s for %s", cert_path, _describe(names))
        cert_var = key_var = f"SIDECOACH_SELF_SIGNED (--self-signed, {cert_path.parent})"
    else:
        assert config.tls_cert is not None and config.tls_key is not None
        cert_path, key_path = config.tls_cert, config.tls_key
        cert_var, key_var = CERT_VAR, KEY_VAR
    context, leaf = _context(cert_path, key_path, cert_var, key_var)
    return TlsSetup(context, cert_path, sha256_fingerprint(leaf), config.self_signed)


CERT_VAR, KEY_VAR = "SIDECOACH_TLS_CERT (--tls-cert)", "SIDECOACH_TLS_KEY (--tls-key)"


def check_tls_files(config: Config) -> None:
    """Refuse (one line, naming the setting) a certificate or key given with
    ``--tls-cert``/``--tls-key`` that is not PEM or does not match."""
    if config.tls_cert is not None and config.tls_key is not None:
        _context(config.tls_cert, config.tls_key, CERT_VAR, KEY_VAR)


def _context(
    cert_path: Path, key_path: Path, cert_var: str, key_var: str
) -> tuple[ssl.SSLContext, x509.Certificate]:
    try:
        leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a PEM certificate"
        raise ConfigError(
            f"{cert_var}: cannot read a certificate from {cert_path}: {reason}"
        ) from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{key_var}: the key in {key_path} cannot be used with the certificate "
            f"{cert_path}: {getattr(exc, 'reason', None) or exc.strerror or exc}"
        ) from None
    return context, leaf


def _describe(names: CertificateNames) -> str:
    return ", ".join([*names.dns, *(str(ip) for ip in names.ips)])

"""Trying Sidecoach on a school LAN (``--lan``, what ``scripts/run`` does):
HTTPS on this machine's LAN address with the self-signed certificate kept in
the data directory, plain HTTP on localhost for the machine itself, and the
links a tablet opens, printed with QR codes and the certificate's
fingerprint to compare.

Browsers give a page the camera and microphone only in a secure context:
``https://``, or ``http://localhost``. A tablet must use the LAN address, so
it gets HTTPS; the machine itself keeps the warning-free localhost.
"""

from __future__ import annotations

import io
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

import ifaddr
import qrcode

logger = logging.getLogger(__name__)

#: where the kernel lists its IPv4 routes (the default route's interface
#: carries the address the rest of the LAN reaches)
PROC_ROUTES = Path("/proc/net/route")
#: interfaces that are never the LAN (containers, VMs, VPN-less bridges)
VIRTUAL_PREFIXES = ("docker", "br-", "virbr", "veth", "cni", "flannel", "podman", "lxc")
#: plain HTTP for the machine itself listens here (a secure context for browsers)
LOCALHOST_IP = "127.0.0.1"


@dataclass(frozen=True)
class LanPlan:
    """Where ``--lan`` listens: HTTPS on ``lan_ips`` (the first is the one
    printed), HTTP on localhost, all on ``port``."""

    lan_ips: tuple[str, ...]
    port: int

    @property
    def https_url(self) -> str:
        return _url("https", self.lan_ips[0], self.port) if self.lan_ips else ""

    @property
    def local_url(self) -> str:
        return _url("http", "localhost", self.port)


def _url(scheme: str, host: str, port: int) -> str:
    default = {"https": 443, "http": 80}[scheme]
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def _default_route_interfaces(routes: Path = PROC_ROUTES) -> list[str]:
    """Interfaces holding an IPv4 default route (Linux), best metric first."""
    found: list[tuple[int, str]] = []
    try:
        lines = routes.read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        cols = line.split()
        # Iface Destination Gateway Flags RefCnt Use Metric Mask ...
        if len(cols) >= 8 and cols[1] == "00000000" and cols[7] == "00000000":
            try:
                found.append((int(cols[6]), cols[0]))
            except ValueError:
                continue
    return [name for _, name in sorted(found)]


def lan_addresses(routes: Path = PROC_ROUTES) -> tuple[str, ...]:
    """This machine's LAN IPv4 addresses: private (RFC 1918 and the like),
    not loopback, not link-local, not on a container or VM bridge; the
    address of the default route's interface first."""
    by_interface: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        name = adapter.nice_name or adapter.name
        if name.startswith(VIRTUAL_PREFIXES):
            continue
        for addr in adapter.ips:
            if not isinstance(addr.ip, str):
                continue  # IPv6: a tablet types and scans IPv4 more easily
            ip = ipaddress.ip_address(addr.ip)
            if ip.is_private and not ip.is_loopback and not ip.is_link_local:
                by_interface.setdefault(name, []).append(str(ip))
    preferred = _default_route_interfaces(routes)
    ordered = sorted(
        by_interface,
        key=lambda n: (preferred.index(n) if n in preferred else len(preferred), n),
    )
    return tuple(ip for name in ordered for ip in by_interface[name])


def plan(port: int, routes: Path = PROC_ROUTES) -> LanPlan:
    return LanPlan(lan_addresses(routes), port)


def qr_lines(text: str) -> list[str]:
    """``text`` as a QR code for a terminal: two modules a character (half
    blocks), light on a dark background, with the quiet zone scanners need."""
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
    qr.add_data(text)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue().replace("\xa0", " ").rstrip("\n").splitlines()


def banner(plan: LanPlan, fingerprint: str, cert_path: Path) -> list[str]:
    """What ``--lan`` prints once it listens: where to go, and what to compare."""
    if not plan.lan_ips:
        return [
            f"No LAN address found: serving {plan.local_url} for this machine only "
            "(a tablet needs this machine on its network)",
        ]
    others = [_url("https", ip, plan.port) for ip in plan.lan_ips[1:]]
    lines = [
        f"Sidecoach is listening on {plan.https_url} (tablets and laptops on this network)"
        f" and {plan.local_url} (this machine)",
        f"HTTPS with a SELF-SIGNED certificate, NOT for production: {cert_path}",
        f"  SHA-256 fingerprint {fingerprint}",
        "  A browser warns once per device: compare the fingerprint it shows (the"
        " certificate's details) with this one, then accept it.",
    ]
    if others:
        lines.append(f"  also on {', '.join(others)}")
    return lines

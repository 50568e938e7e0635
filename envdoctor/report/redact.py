"""--redact: replace personal and machine identifiers (home, user, hostname, GPU UUIDs) in any output."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from envdoctor.facts import Facts, to_dict

# A full GPU/MIG UUID, or a prefix of one: CUDA_VISIBLE_DEVICES accepts any unique prefix (GPU-01d83f95-672d).
# A prefix needs 4+ hex digits and a decimal digit, so words like "GPU-accelerated" or "GPU-face" stay.
_HEX = "[0-9a-fA-F]"
_UUID = re.compile(
    rf"\b(GPU|MIG)-(?:{_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}|(?=[0-9a-fA-F-]*[0-9]){_HEX}{{4,}}(?:-{_HEX}+)*)\b"
)
# Default accounts of images and clouds: not personal data, and several are also words the facts need
# (distro id "ubuntu", the facts key "root"), which a blind replacement would corrupt.
_ACCOUNTS = frozenset({"root", "ubuntu", "debian", "admin", "ec2-user", "centos", "fedora", "rocky", "opc"})


# A dotted quad, or an IPv6 address (with "::", or all eight groups) that the ipaddress module accepts. Clock times
# (16:49:42) and versions with fewer than four parts do not match; a four-part version the facts carry (a wheel's
# 10.3.6.82) is spared by name.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w.]|\.\d)")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?(?![\w:])")


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    address = text.split("%", 1)[0]
    if "::" not in address and address.count(":") != 7:
        return text  # a clock time or a PCI bus id, not an address
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return text
    return "<ip>"


def redactor(facts: Facts) -> Callable[[str], str]:
    """A function that scrubs one string, built from what the facts say is personal.

    User and host names are redacted as tokens, whatever their case, wherever a letter or digit does not
    continue them: `alice`, `Alice`, `alice_dev`, `alice-laptop`, `/data/alice/x`. The host's short name (before
    the first dot) is a token of its own, as are IPv4 and IPv6 addresses."""
    system = facts.system
    replacements: list[tuple[re.Pattern[str], str]] = []
    if system.home and system.home not in ("/", "/root"):
        replacements.append((re.compile(re.escape(system.home.rstrip("/"))), "~"))
    for name in _host_names(system.hostname):
        replacements.append((_token(name), "<host>"))
    if system.user and len(system.user) > 2 and system.user.lower() not in _ACCOUNTS:
        replacements.append((_token(system.user), "<user>"))
    versions = _versions(to_dict(facts))
    uuids: dict[str, str] = {}

    def _uuid(match: re.Match[str]) -> str:
        key = match.group(0).lower()
        uuids.setdefault(key, f"{match.group(1)}-<redacted-{len(uuids) + 1}>")
        return uuids[key]

    def _address(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0) in versions else "<ip>"

    def scrub(text: str) -> str:
        for pattern, repl in replacements:
            text = pattern.sub(repl, text)
        text = _IPV6_CANDIDATE.sub(_ipv6, text)
        text = _IPV4.sub(_address, text)
        return _UUID.sub(_uuid, text)

    return scrub


def _token(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.IGNORECASE)


def _host_names(hostname: str | None) -> list[str]:
    """The full name first (so that `gpu01.lab.example` goes whole), then the short one; never a bare address."""
    if not hostname or hostname.lower() in ("localhost", "localhost.localdomain"):
        return []
    names = [hostname]
    short = hostname.split(".", 1)[0]
    if short != hostname and short and not short.isdigit():
        names.append(short)
    return names


def _versions(tree: Any) -> set[str]:
    """Every value of a key that names a version: these look like addresses but are not."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and "version" in str(key).lower():
                    found.add(item)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def redact_tree(value: Any, scrub: Callable[[str], str]) -> Any:
    """Apply scrub to every string value of a JSON-like tree. Keys are names of fields (or of environment
    variables), never personal: scrubbing them would break a snapshot that --from reads back."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: redact_tree(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v, scrub) for v in value]
    return value

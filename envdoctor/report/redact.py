"""--redact: replace personal and machine identifiers (home, user, hostname, GPU UUIDs) in any output."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from envdoctor.facts import Facts

# A full GPU/MIG UUID, or a prefix of one: CUDA_VISIBLE_DEVICES accepts any unique prefix (GPU-01d83f95-672d).
# A prefix needs 4+ hex digits and a decimal digit, so words like "GPU-accelerated" or "GPU-face" stay.
_HEX = "[0-9a-fA-F]"
_UUID = re.compile(
    rf"\b(GPU|MIG)-(?:{_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}|(?=[0-9a-fA-F-]*[0-9]){_HEX}{{4,}}(?:-{_HEX}+)*)\b"
)
# Default accounts of images and clouds: not personal data, and several are also words the facts need
# (distro id "ubuntu", the facts key "root"), which a blind replacement would corrupt.
_ACCOUNTS = frozenset({"root", "ubuntu", "debian", "admin", "ec2-user", "centos", "fedora", "rocky", "opc"})


def redactor(facts: Facts) -> Callable[[str], str]:
    """A function that scrubs one string, built from what the facts say is personal."""
    system = facts.system
    replacements: list[tuple[re.Pattern[str], str]] = []
    if system.home and system.home not in ("/", "/root"):
        replacements.append((re.compile(re.escape(system.home.rstrip("/"))), "~"))
    if system.hostname:
        replacements.append((re.compile(rf"(?<![\w.-]){re.escape(system.hostname)}(?![\w-])"), "<host>"))
    if system.user and len(system.user) > 2 and system.user not in _ACCOUNTS:
        replacements.append((re.compile(rf"(?<![\w-]){re.escape(system.user)}(?![\w-])"), "<user>"))
    uuids: dict[str, str] = {}

    def _uuid(match: re.Match[str]) -> str:
        key = match.group(0).lower()
        uuids.setdefault(key, f"{match.group(1)}-<redacted-{len(uuids) + 1}>")
        return uuids[key]

    def scrub(text: str) -> str:
        for pattern, repl in replacements:
            text = pattern.sub(repl, text)
        return _UUID.sub(_uuid, text)

    return scrub


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

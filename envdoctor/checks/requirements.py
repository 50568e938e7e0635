"""Python packages that break `import tensorflow`: TensorFlow's own Requires-Dist checked against the installed
distributions, as `pip check` would, without running pip; plus the breakages its METADATA does not declare."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import dist_name, is_tf_distribution, major_minor, pip_fix, python_cmd, version
from envdoctor.facts import Facts, PythonPackage
from envdoctor.resources import load_recipe

LEGACY_KERAS_ON = ("1", "true", "yes")  # tensorflow/python/util/lazy_loader.py: TF_USE_LEGACY_KERAS in these
# TF_USE_LEGACY_KERAS=1 makes tf.keras import tf_keras from TensorFlow 2.15 on (its lazy loader; the failure with
# 2.15 and no tf_keras is reproduced in huggingface/transformers#40391); from 2.16 tf.keras is Keras 3 without it.
LEGACY_KERAS_SINCE = "2.15"


@dataclass
class Unmet:
    name: str  # canonical distribution name
    wanted: str  # the specifier to install, e.g. "<2.0.0,>=1.23.5"
    installed: PythonPackage | None  # None: not installed at all
    declared: str  # the Requires-Dist line (or the undeclared rule) it fails
    by: str  # "tensorflow 2.15.0" / "tf_keras 2.16.0"


@check
def requirement_checks(facts: Facts) -> Iterable[Finding]:
    tf = facts.tensorflow
    if not tf.version or not tf.requirements_path:  # nothing read (an older snapshot, no METADATA): no judgement
        return []
    unmet = _declared(facts) + _undeclared(facts)
    findings = [_finding(facts, u) for u in _merge(unmet)]
    findings += _legacy_keras(facts)
    return findings


def _marker_env(facts: Facts) -> dict[str, str]:
    """The PEP 508 environment of the inspected interpreter, as far as the facts tell (extra: none requested)."""
    py = facts.tensorflow.python_version or facts.system.python_version or ""
    mm = major_minor(py)
    system = facts.system.os or "Linux"
    return {
        "python_version": f"{mm[0]}.{mm[1]}" if mm else "",
        "python_full_version": py,
        "sys_platform": {"Linux": "linux", "Windows": "win32", "Darwin": "darwin"}.get(system, system.lower()),
        "platform_system": system,
        "platform_machine": facts.system.arch or "x86_64",
        "os_name": "nt" if system == "Windows" else "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": py,
        "extra": "",
    }


def _owners(facts: Facts) -> list[PythonPackage]:
    """The TensorFlow distribution whose files are installed, and tf-keras: the ones whose requirements count."""
    tf = facts.tensorflow
    site = (tf.location or "").rsplit("/", 1)[0]
    mine = [
        p for p in tf.distributions if is_tf_distribution(p.name) and p.location == site and p.version == tf.version
    ]
    return (mine or tf.distributions[:1]) + [p for p in tf.related if p.requires_dist]


def _declared(facts: Facts) -> list[Unmet]:
    tf = facts.tensorflow
    installed = {dist_name(p.name): p for p in tf.requirements}
    if tf.version:  # tensorflow-cpu and friends provide `tensorflow` too (tf-keras requires it)
        installed["tensorflow"] = PythonPackage("tensorflow", tf.version, site_of(facts))
    lines = [(owner, line) for owner in _owners(facts) for line in owner.requires_dist]
    doubtful = [(owner, line) for owner, line in lines if not _plainly_met(line, installed)]
    if not doubtful:
        return []
    from packaging.requirements import InvalidRequirement, Requirement  # only for lines the fast path left open

    env = _marker_env(facts)
    out: list[Unmet] = []
    for owner, line in doubtful:
        try:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue  # an extra not asked for ([and-cuda]), another platform or Python
        except (InvalidRequirement, ValueError, TypeError, KeyError):
            continue  # a line packaging cannot read is no evidence either way
        have = installed.get(dist_name(req.name))
        if have is not None and _satisfies(req.specifier, have.version):
            continue
        out.append(Unmet(dist_name(req.name), str(req.specifier), have, line, f"{owner.name} {owner.version}"))
    return out


# Importing packaging.requirements costs ~10 ms (its tokenizer compiles the PEP 508 grammar), near a tenth of
# `check`. In a healthy environment every line is a plain range that holds, or an extra's (and-cuda) that does not
# apply; those are settled here with packaging.version alone, and anything else goes to packaging.requirements.
_PLAIN = re.compile(
    r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\(?\s*((?:(?:<=|>=|<|>|==|!=)\s*[0-9][0-9A-Za-z.]*"
    r"\s*,?\s*)*)\)?\s*"
)
_CLAUSE = re.compile(r"(<=|>=|<|>|==|!=)\s*([0-9][0-9A-Za-z.]*)")
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _plainly_met(line: str, installed: dict[str, PythonPackage]) -> bool:
    """True when the line surely holds (or surely does not apply); False means: ask packaging."""
    spec, _, marker = line.partition(";")
    if marker.strip():  # `... and extra == "and-cuda"` with no `or`: false, as no extra is asked for
        return " or " not in marker and re.search(r"\bextra\s*==", marker) is not None
    match = _PLAIN.fullmatch(spec)
    have = installed.get(dist_name(match.group(1))) if match else None
    try:
        got = Version(have.version) if have and have.version else None
        wants = [(op, Version(v)) for op, v in _CLAUSE.findall(match.group(2))] if match else []
    except InvalidVersion:
        return False
    if got is None or got.is_prerelease or got.is_postrelease or got.local:  # packaging's special cases
        return False
    return all(_OPS[op](got, v) for op, v in wants)


def site_of(facts: Facts) -> str | None:
    return (facts.tensorflow.location or "").rsplit("/", 1)[0] or None


def _satisfies(specifier, installed: str | None) -> bool:
    v = version(installed)
    return v is None or specifier.contains(v, prereleases=True)  # an unreadable version is not judged


def _undeclared(facts: Facts) -> list[Unmet]:
    """Breakages TensorFlow's METADATA does not declare (numpy 2 under a NumPy-1 build, protobuf 4 under old
    generated code): recipes/python_packages.json `undeclared_conflicts`, judged with plain version bounds."""
    tf = facts.tensorflow
    installed = {dist_name(p.name): p for p in tf.requirements}
    tf_v = version(tf.version)
    out: list[Unmet] = []
    for rule in load_recipe("python_packages.json")["undeclared_conflicts"]:
        have = installed.get(rule["package"])
        got = version(have.version) if have else None
        since, below = version(rule.get("tensorflow_from", "0")), version(rule["tensorflow_below"])
        breaks = version(rule["breaks_from"])
        if tf_v is None or got is None or since is None or below is None or breaks is None:
            continue
        if not since <= tf_v < below or got < breaks:
            continue
        from packaging.specifiers import SpecifierSet  # only when a rule applies

        line = (
            f"{rule['package']}{rule['install']} (TensorFlow {tf.version} was built before {rule['package']} "
            f"{rule['breaks_from']}; its METADATA does not say so)"
        )
        wanted = SpecifierSet(rule["install"]) & SpecifierSet(_declared_specifiers(facts).get(rule["package"], ""))
        out.append(Unmet(rule["package"], str(wanted), have, line, f"tensorflow {tf.version}"))
    return out


def _declared_specifiers(facts: Facts) -> dict[str, str]:
    """What TensorFlow's own METADATA asks of each distribution (numpy>=1.23.5), to keep in a narrowed pin."""
    from packaging.requirements import InvalidRequirement, Requirement

    env, out = _marker_env(facts), {}
    for owner in _owners(facts)[:1]:
        for line in owner.requires_dist:
            try:
                req = Requirement(line)
                if req.marker is None or req.marker.evaluate(env):
                    out[dist_name(req.name)] = str(req.specifier)
            except (InvalidRequirement, ValueError, TypeError, KeyError):
                continue
    return out


def _merge(unmet: list[Unmet]) -> list[Unmet]:
    """One entry per distribution: the declared and undeclared ranges together (numpy<2.0.0,>=1.23.5 and <2)."""
    merged: dict[str, Unmet] = {}
    for u in unmet:
        if u.name not in merged:
            merged[u.name] = u
            continue
        from packaging.specifiers import SpecifierSet

        first = merged[u.name]
        both = SpecifierSet(first.wanted) & SpecifierSet(u.wanted)
        merged[u.name] = Unmet(u.name, str(both), first.installed, first.declared, first.by)
    return list(merged.values())


def _finding(facts: Facts, u: Unmet) -> Finding:
    table = load_recipe("python_packages.json")
    breaks = u.name in table["breaks_import"]
    wanted = _requirement(u)
    have = f"{dist_name(u.installed.name)} {u.installed.version}" if u.installed else "not installed"
    if u.installed is None:
        title = f"{u.name} is not installed, but {u.by} requires {wanted}"
    else:
        title = f"{have} is installed, but {u.by} requires {wanted}"
    title += ": `import tensorflow` fails" if breaks else " (pip check reports it)"
    evidence = [f"{u.by} METADATA: Requires-Dist: {u.declared}"]
    if u.installed is not None:
        evidence.append(f"installed: {have} ({u.installed.location})")
    if breaks and (symptom := table["symptoms"].get(u.name)):
        evidence.append(f"what it looks like: {symptom}")
    fix = pip_fix(facts, shlex.quote(wanted))
    shadow = _shadowing(facts, u.installed)
    if shadow:
        evidence.append(f"{shadow} is a user site-packages: it comes before the environment's own on the import path")
        fix = (
            f"{python_cmd(facts)} -m pip uninstall -y {u.name}\n{fix}\n"
            f"# the copy in {shadow} shadows the environment's own: remove it first"
        )
    return Finding(
        code="tensorflow.requirement-broken" if breaks else "tensorflow.requirement-unmet",
        severity=Severity.ERROR if breaks else Severity.WARNING,
        title=title,
        evidence=evidence,
        fix=fix,
    )


def _requirement(u: Unmet) -> str:
    return f"{u.name}{u.wanted}"


def _shadowing(facts: Facts, installed: PythonPackage | None) -> str | None:
    """The user site-packages (~/.local) a copy sits in, when TensorFlow lives elsewhere: pip install into the
    environment would not replace the copy import finds first."""
    where = installed.location if installed else None
    if not where or "/.local/lib/python" not in where or where == site_of(facts):
        return None
    return where


def _legacy_keras(facts: Facts) -> list[Finding]:
    """TF_USE_LEGACY_KERAS=1 on TensorFlow 2.16+ makes tf.keras import tf_keras, which is a separate package."""
    tf = facts.tensorflow
    value = facts.env.variables.get("TF_USE_LEGACY_KERAS")
    v, since = version(tf.version), version(LEGACY_KERAS_SINCE)
    if value is None or value.lower() not in LEGACY_KERAS_ON or v is None or since is None or v < since:
        return []
    if any(dist_name(p.name) == "tf-keras" for p in tf.related):
        return []  # installed; whether its version matches is tf-keras's own Requires-Dist (checked above)
    mm = f"{v.major}.{v.minor}"
    why = (
        f"TensorFlow {tf.version}: tf.keras is Keras 3 unless tf-keras (Keras 2) is installed and this variable is set"
        if v.minor >= 16
        else f"TensorFlow {tf.version}: with this variable set, tf.keras imports tf_keras"
    )
    return [
        Finding(
            code="tensorflow.legacy-keras-missing",
            severity=Severity.ERROR,
            title=f"TF_USE_LEGACY_KERAS={value} but tf-keras is not installed: tf.keras fails to import on TensorFlow "
            f"{tf.version}",
            evidence=[f"TF_USE_LEGACY_KERAS={value}", why, "tf-keras: not installed"],
            fix=pip_fix(facts, shlex.quote(f"tf-keras=={mm}.*"))
            + f"\n# tf-keras {mm} is the Keras 2 for TensorFlow {mm} "
            f"(it requires tensorflow>={mm},<{v.major}.{v.minor + 1})",
        )
    ]

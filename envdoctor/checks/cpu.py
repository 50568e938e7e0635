"""CPU findings: AVX (stock wheels need it), instructions TF leaves unused, and oneDNN's state."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.version import Version

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import pip_fix, stock_wheel_instructions, tf_releases, tf_requirement, version, with_ok
from envdoctor.facts import Facts, TuneFacts
from envdoctor.knowledge import onednn
from envdoctor.knowledge.versions import version_key

_GAIN_NOTE = (
    "# optional; expect a modest gain: oneDNN already uses these instructions in its convolution and "
    "matrix-multiply kernels, a native build speeds up the other (Eigen) ops only"
)


_ONEDNN_NUMERICS = (
    "results may differ in the last bits from a run without oneDNN (another summation order); "
    "TF_ENABLE_ONEDNN_OPTS=0 turns it off"
)


def _is_x86(facts: Facts) -> bool:
    return (facts.cpu.arch or facts.system.arch) in ("x86_64", "AMD64", "amd64")


def _tf_installed(facts: Facts) -> bool:
    return bool(facts.tensorflow.version or facts.tensorflow.distributions)


@check
def cpu_checks(facts: Facts) -> Iterable[Finding]:
    findings: list[Finding] = []
    if _is_x86(facts) and facts.cpu.flags:
        flags = set(facts.cpu.flags)
        if "avx" not in flags:
            findings.append(_no_avx(facts, flags))
        elif missing := _wheel_needs(facts, flags):
            findings.append(_wheel_instructions_missing(facts, missing))
        elif _tf_installed(facts):
            findings.extend(_unused_instructions(facts, flags))
            findings.extend(_onednn(facts, flags))
    return with_ok("cpu", findings, lambda: _ok(facts))


def _no_avx(facts: Facts, flags: set[str]) -> Finding:
    evidence = [
        f"CPU: {facts.cpu.model}",
        "/proc/cpuinfo flags have no 'avx'",
        f"SIMD it has: {' '.join(f for f in ('sse4_1', 'sse4_2', 'ssse3') if f in flags) or 'none beyond SSE2'}",
    ]
    if "hypervisor" in flags:
        evidence.append("'hypervisor' flag: a VM may be hiding AVX (check the VM's CPU model, e.g. host-passthrough)")
    if facts.tensorflow.version:
        evidence.append(
            f"installed: TensorFlow {facts.tensorflow.version}; stock x86_64 wheels are compiled with -mavx"
        )
    return Finding(
        code="cpu.no-avx",
        severity=Severity.ERROR,
        title="CPU without AVX: stock TensorFlow dies on import with 'Illegal instruction'",
        evidence=evidence,
        fix="envdoctor build-tf\n# builds TensorFlow from source for the instructions this CPU has (no AVX)",
    )


def _release_judged(facts: Facts) -> str | None:
    """The installed release, else the newest (what `pip install tensorflow` would bring)."""
    return facts.tensorflow.version or max(tf_releases()["releases"], key=version_key)


def _wheel_needs(facts: Facts, flags: set[str]) -> list[str]:
    return [f for f in stock_wheel_instructions(_release_judged(facts)) if f not in flags]


def _wheel_instructions_missing(facts: Facts, missing: list[str]) -> Finding:
    """AVX without F16C (some VMs mask it, a few old CPUs lack it): the stock 2.21 wheel is compiled with -mf16c."""
    release = _release_judged(facts)
    installed = bool(facts.tensorflow.version)
    names = " ".join(m.upper() for m in missing)
    older = [
        r
        for r in tf_releases()["releases"]
        if not [f for f in stock_wheel_instructions(r) if f not in set(facts.cpu.flags)]
    ]
    newest_ok = max(older, key=version_key) if older else None
    return Finding(
        code="cpu.wheel-instructions-missing",
        severity=Severity.ERROR if installed else Severity.WARNING,
        title=f"This CPU lacks {names}, which the stock TensorFlow {release} wheel is compiled for: "
        f"{'importing it dies' if installed else 'it would die on import'} with 'Illegal instruction'",
        evidence=[
            f"CPU: {facts.cpu.model}",
            f"/proc/cpuinfo flags have no {' '.join(missing)}",
            f"TensorFlow {release} stock x86_64 wheel: compiled with "
            f"{' '.join('-m' + f for f in stock_wheel_instructions(release))} (its .bazelrc avx_linux config)",
        ]
        + (
            ["'hypervisor' flag: a VM may be hiding it (check the VM's CPU model, e.g. host-passthrough)"]
            if "hypervisor" in facts.cpu.flags
            else []
        ),
        fix=(pip_fix(facts, tf_requirement(facts, f"{newest_ok}.*")) + "\n" if newest_ok else "")
        + "# or: envdoctor build-tf   (a TensorFlow built for the instructions this CPU has)",
    )


def _unused_instructions(facts: Facts, flags: set[str]) -> list[Finding]:
    wheel = tf_releases()["x86_64_wheel"]
    compiled_with = stock_wheel_instructions(facts.tensorflow.version)
    deep = facts.deep
    if deep is not None and (deep.missing_cpu_instructions or deep.returncode == 0):
        # TF ran with its INFO log on: what it printed (or did not print) is the truth for this binary.
        unused = list(deep.missing_cpu_instructions)
        source = "TensorFlow's own import log (cpu_feature_guard, --deep)"
    else:
        unused = [name for flag, name in wheel["feature_guard"].items() if flag in flags and flag not in compiled_with]
        source = (
            f"stock x86_64 wheels of this release are compiled with {' '.join('-m' + f for f in compiled_with)}"
            " only (TF .bazelrc: avx_linux); assumed for this install"
        )
    if not unused:
        return []
    return [
        Finding(
            code="cpu.unused-instructions",
            severity=Severity.INFO,
            title=f"TensorFlow's own kernels do not use these CPU instructions: {' '.join(unused)}",
            evidence=[f"CPU: {facts.cpu.model}", source],
            fix=f"envdoctor build-tf\n{_GAIN_NOTE}",
        )
    ]


def _onednn(facts: Facts, flags: set[str]) -> list[Finding]:
    tf = version(facts.tensorflow.version)
    if tf is None or tf < Version(str(onednn.policy()["default_since"])) or facts.system.os == "Darwin":
        return []  # macOS builds have no oneDNN custom operations (INTEL_MKL is Linux/Windows only)
    default, why = _onednn_default(facts, flags, tf)
    evidence = [why]
    state, raw = default, facts.env.variables.get("TF_ENABLE_ONEDNN_OPTS")
    if (setting := onednn.env_setting(raw)) is not None:
        state = setting
        evidence.append(f"TF_ENABLE_ONEDNN_OPTS={raw} overrides the default")
    if facts.deep is not None and facts.deep.onednn_enabled is not None:
        state = facts.deep.onednn_enabled
        evidence.append(f"TensorFlow's import log says oneDNN is {'on' if state else 'off'} (--deep)")
    if state:
        return [
            Finding(
                code="cpu.onednn-on",
                severity=Severity.INFO,
                title="oneDNN custom operations are on",
                evidence=evidence + [_ONEDNN_NUMERICS],
                fix=None,
            )
        ]
    return [
        Finding(
            code="cpu.onednn-off",
            severity=Severity.INFO,
            title="oneDNN custom operations are off",
            evidence=evidence,
            fix="export TF_ENABLE_ONEDNN_OPTS=1\n"
            + (onednn_gain_note(facts.tune) if facts.tune else "# optional: often faster on the CPU"),
        )
    ]


def onednn_gain_note(tune: TuneFacts) -> str:
    """The gain `envdoctor smoke-test --tune` measured on this machine (facts.tune), as a comment for the fix."""
    rounds = tune.rounds if tune.rounds is not None else "?"
    return (
        f"# measured by `envdoctor smoke-test --tune` on this CPU model with TensorFlow {tune.tf_version} "
        f"({tune.measured_at or '?'}): {tune.onednn_ratio:.2f}x the images/s of oneDNN "
        f"{tune.onednn_versus or 'off'}, {rounds} interleaved rounds"
        + ("; the machine was shared, so the figure is rough" if tune.unreliable else "")
    )


def _onednn_default(facts: Facts, flags: set[str], tf: Version) -> tuple[bool, str]:
    """TensorFlow's own default (port.cc DefaultOneDnnPolicy) for this OS and CPU, and why."""
    if facts.system.os == "Windows":
        since = onednn.policy()["default_on_windows_x86_since"]
        on = tf >= Version(str(since))
        return on, f"default {'on' if on else 'off'} on Windows x86 {'since' if on else 'before'} TensorFlow {since}"
    triggers = onednn.linux_x86_triggers(flags)
    if triggers:
        return True, f"default on: the CPU has {' '.join(triggers)}"
    return False, "default off: the CPU has none of AVX512_VNNI, AVX512_BF16, AVX_VNNI, AMX"


def _ok(facts: Facts) -> Finding:
    c = facts.cpu
    parts = [c.model or c.vendor or "CPU"]
    if c.cores or c.threads:
        parts.append(f"{c.cores or '?'} cores / {c.threads or '?'} threads")
    if c.psabi_level:
        parts.append(f"x86-64-v{c.psabi_level}")
    evidence = [f"features: {' '.join(c.features)}"] if c.features else []
    if c.peak_gflops_fp32_estimate:
        evidence.append(f"peak FP32 ≈ {c.peak_gflops_fp32_estimate:.0f} GFLOP/s ({c.peak_basis or 'estimate'})")
    return Finding(code="cpu.ok", severity=Severity.OK, title=", ".join(parts), evidence=evidence)

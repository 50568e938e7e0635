"""Environment-variable findings: CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER and TensorFlow's switches."""

from __future__ import annotations

from collections.abc import Iterable

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import has_nvidia_gpu, join, with_ok
from envdoctor.facts import Facts, GpuFacts
from envdoctor.gpus.spec import HIDE_ALL, usable_devices
from envdoctor.gpus.visible import (
    EMPTY_PROBLEM,
    PCI_BUS_ID,
    VisibleDevice,
    effective_order,
    resolve_visible_devices,
)
from envdoctor.knowledge import onednn


@check
def environment_checks(facts: Facts) -> Iterable[Finding]:
    env = facts.env.variables
    findings: list[Finding] = []
    order_invalid = _order_invalid(env.get("CUDA_DEVICE_ORDER")) if has_nvidia_gpu(facts) else []
    findings += order_invalid
    if facts.gpus:
        # With the order fixed as told, CUDA_VISIBLE_DEVICES still has to be right: judge it under PCI_BUS_ID.
        findings += _visibility(facts, PCI_BUS_ID if order_invalid else env.get("CUDA_DEVICE_ORDER"))
    elif (
        env.get("CUDA_VISIBLE_DEVICES") is not None
        and not env["CUDA_VISIBLE_DEVICES"].strip()
        and has_nvidia_gpu(facts)
    ):
        findings.append(_empty())
    findings += _allow_growth(env)
    findings += _onednn_opts(env)
    return with_ok("environment", findings, lambda: _ok(facts))


def _empty() -> Finding:
    return Finding(
        code="environment.cuda-visible-devices-empty",
        severity=Severity.WARNING,
        title="CUDA_VISIBLE_DEVICES is set but empty: TensorFlow sees no GPU",
        evidence=["CUDA_VISIBLE_DEVICES=''"],
        fix='unset CUDA_VISIBLE_DEVICES\n# or, to run on the CPU on purpose: eval "$(envdoctor env --gpus none)"',
    )


def _order_invalid(order: str | None) -> list[Finding]:
    _, problem = effective_order(order)
    if problem is None:
        return []
    return [
        Finding(
            code="environment.cuda-device-order-invalid",
            severity=Severity.ERROR,
            title=f"CUDA_DEVICE_ORDER={order} is invalid: CUDA fails to initialise and TensorFlow sees no GPU",
            evidence=[
                problem,
                "recorded on a real H100 (driver 580.159.04): cuInit returns 101 with or without CUDA_VISIBLE_DEVICES",
            ],
            fix="export CUDA_DEVICE_ORDER=PCI_BUS_ID\n# PCI_BUS_ID numbers GPUs as nvidia-smi does",
        )
    ]


def _spec_for(devices: list[VisibleDevice], gpus: list[GpuFacts]) -> str:
    """A SPEC for `envdoctor env --gpus` naming these devices: nvidia-smi indices, MIG devices by MIG UUID."""
    if not devices:  # CUDA sees nothing: offer the first device envdoctor can select
        devices = [VisibleDevice(0, c.gpu, c.mig) for c in usable_devices(gpus)[:1]]
    return ",".join(d.mig.uuid if d.mig else str(d.gpu.index) for d in devices) or "none"


def _visibility(facts: Facts, order: str | None) -> list[Finding]:
    env = facts.env.variables
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    res = resolve_visible_devices(cvd, facts.gpus, order)
    out: list[Finding] = []
    if res.hidden_all:
        out.append(_empty())
    elif cvd is not None and cvd.strip() == HIDE_ALL:  # what `envdoctor env --gpus none` sets: CPU-only on purpose
        return [
            Finding(
                code="environment.cuda-visible-devices-cpu-only",
                severity=Severity.INFO,
                title=f"CUDA_VISIBLE_DEVICES={HIDE_ALL} hides every GPU: TensorFlow runs on the CPU",
                evidence=[f"CUDA_VISIBLE_DEVICES={cvd!r}", f"GPUs on this machine: {len(facts.gpus)}"],
                fix="unset CUDA_VISIBLE_DEVICES  # to use the GPUs again",
            )
        ]
    problems = [p for p in res.problems if p != EMPTY_PROBLEM]
    mapping = [
        f"CUDA ordinal {d.ordinal} = nvidia-smi GPU {d.gpu.index} ({d.gpu.name}"
        + (f", MIG {d.mig.uuid}" if d.mig else "")
        + ")"
        for d in res.devices
    ]
    if problems:
        keep = _spec_for(res.devices, facts.gpus)
        if cvd is not None:
            out.append(
                Finding(
                    code="environment.cuda-visible-devices-invalid",
                    severity=Severity.ERROR if not res.visible else Severity.WARNING,
                    title=f"CUDA_VISIBLE_DEVICES={cvd} does not select what it says",
                    evidence=problems + (mapping or ["CUDA sees no GPU"]),
                    fix=f'eval "$(envdoctor env --gpus {keep})"\n'
                    "# nvidia-smi numbering; sets CUDA_DEVICE_ORDER and CUDA_VISIBLE_DEVICES consistently",
                )
            )
        else:
            out.append(
                Finding(
                    code="environment.gpu-visibility",
                    severity=Severity.INFO,
                    title="How CUDA will enumerate these GPUs",
                    evidence=problems + mapping,
                    fix="envdoctor gpus\n# lists the CUDA ordinal of each GPU",
                )
            )
    models = sorted({g.name for g in facts.gpus})
    if len(models) > 1 and res.order != "PCI_BUS_ID":
        shown = env.get("CUDA_DEVICE_ORDER")
        evidence = [f"GPU models: {join(models)}", f"CUDA_DEVICE_ORDER: {shown or 'unset (FASTEST_FIRST)'}"] + mapping
        if not res.order_exact:
            evidence.append("FASTEST_FIRST is a heuristic: the mapping above is envdoctor's best estimate")
        out.append(
            Finding(
                code="environment.cuda-device-order",
                severity=Severity.WARNING,
                title="CUDA numbers these mixed GPUs differently from nvidia-smi: CUDA_DEVICE_ORDER is not PCI_BUS_ID",
                evidence=evidence,
                fix="export CUDA_DEVICE_ORDER=PCI_BUS_ID\n# or select GPUs by UUID: envdoctor env --gpus GPU-…",
            )
        )
    return out


def _allow_growth(env: dict[str, str]) -> list[Finding]:
    value = env.get("TF_FORCE_GPU_ALLOW_GROWTH")
    if value is None or value in ("true", "false"):
        return []
    return [
        Finding(
            code="environment.allow-growth-invalid",
            severity=Severity.WARNING,
            title=f"TF_FORCE_GPU_ALLOW_GROWTH={value!r} is ignored: TensorFlow accepts only 'true' or 'false'",
            evidence=[f"TF_FORCE_GPU_ALLOW_GROWTH={value!r}", "gpu_bfc_allocator.cc compares the exact strings"],
            fix="export TF_FORCE_GPU_ALLOW_GROWTH=true",
        )
    ]


def _onednn_opts(env: dict[str, str]) -> list[Finding]:
    value = env.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None or onednn.env_setting(value) is not None:
        return []
    return [
        Finding(
            code="environment.onednn-opts-invalid",
            severity=Severity.WARNING,
            title=f"TF_ENABLE_ONEDNN_OPTS={value!r} is ignored: TensorFlow accepts 0, 1, true or false",
            evidence=[f"TF_ENABLE_ONEDNN_OPTS={value!r}", "TensorFlow then uses its default for this CPU"],
            fix="export TF_ENABLE_ONEDNN_OPTS=1  # or 0 to turn oneDNN off",
        )
    ]


def _ok(facts: Facts) -> Finding:
    env = facts.env.variables
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        title = (
            f"CUDA_VISIBLE_DEVICES unset: all {len(facts.gpus)} GPU(s) visible"
            if facts.gpus
            else "No variable changes TensorFlow's GPU behaviour"
        )
    else:
        title = f"CUDA_VISIBLE_DEVICES={cvd}"
    evidence = [f"{k}={v}" for k, v in sorted(env.items())]
    evidence += [f"LD_LIBRARY_PATH entry: {p or '(empty: the current directory)'}" for p in facts.env.ld_library_path]
    evidence += [f"PATH (CUDA-relevant): {p}" for p in facts.env.path_cuda_entries]
    return Finding(code="environment.ok", severity=Severity.OK, title=title, evidence=evidence)

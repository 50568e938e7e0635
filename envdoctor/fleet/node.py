"""One node of the fleet: the values the fleet compares, read off that node's facts, and its findings."""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from envdoctor.facts import Facts, GpuFacts

Severity = Literal["ok", "info", "warning", "error"]
SEVERITY_RANK: dict[str, int] = {"ok": 0, "info": 1, "warning": 2, "error": 3}
Source = Literal["check --json", "check --save"]


class Field(str, Enum):
    """The values a node must share with the rest of the fleet (drift) and with a reference (--expect)."""

    DRIVER = "driver"
    CUDA = "cuda"
    CUDNN = "cudnn"
    TENSORFLOW = "tensorflow"
    GPU_COUNT = "gpu_count"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Field.DRIVER: "driver",
    Field.CUDA: "CUDA",
    Field.CUDNN: "cuDNN",
    Field.TENSORFLOW: "TensorFlow",
    Field.GPU_COUNT: "GPUs",
}
Value = str | int | None


@dataclass(frozen=True)
class NodeFinding:
    code: str
    severity: Severity
    title: str
    evidence: tuple[str, ...] = ()
    fix: str | None = None


@dataclass
class Node:
    host: str
    path: str
    source: Source
    collected_at: str | None
    values: dict[Field, Value]
    gpus: str  # "NVIDIA H100 80GB HBM3 × 8 (79.6 GiB)", the table's GPU cell
    tf_build: str | None  # "CUDA 12.5.1, cuDNN 9": what the installed TensorFlow was built against
    python: str | None
    envdoctor_version: str | None
    findings: list[NodeFinding] = field(default_factory=list)

    def count(self, severity: Severity) -> int:
        return sum(f.severity == severity for f in self.findings)


def node_from_facts(facts: Facts, path: str, source: Source, findings: list[NodeFinding]) -> Node:
    system, tf = facts.system, facts.tensorflow
    values: dict[Field, Value] = {
        Field.DRIVER: facts.driver.userspace_version or facts.driver.kernel_module_version,
        Field.CUDA: cuda_in_use(facts),
        Field.CUDNN: cudnn_in_use(facts),
        Field.TENSORFLOW: tf.version,
        Field.GPU_COUNT: len(facts.gpus),
    }
    return Node(
        host=host_name(system.hostname, path),
        path=path,
        source=source,
        collected_at=facts.collected_at,
        values=values,
        gpus=gpu_cell(facts.gpus),
        tf_build=tf_build(facts),
        python=tf.python_version or system.python_version,
        envdoctor_version=facts.envdoctor_version,
        findings=findings,
    )


def host_name(hostname: str | None, path: str) -> str:
    """The node's host name; a report without one, or redacted (`check --redact` writes <host>), is named after
    its file, which srun's --output 'reports/%N.json' names after the node."""
    if hostname and hostname != "<host>":
        return hostname
    stem = posixpath.basename(path)
    return stem[:-5] if stem.endswith(".json") else stem


def gpu_cell(gpus: list[GpuFacts]) -> str:
    """Model × count (memory) per model, in the order NVML lists them."""
    if not gpus:
        return "none"
    counts = Counter(g.name for g in gpus)
    memory = {g.name: g.memory_total_bytes for g in gpus}
    parts = []
    for name, count in counts.items():
        total = memory[name]
        gib = f" ({total / 2**30:.1f} GiB)" if total else ""
        parts.append(f"{name} × {count}{gib}")
    return ", ".join(parts)


def cuda_in_use(facts: Facts) -> str | None:
    """The CUDA runtime TensorFlow resolves (a pip wheel or a toolkit), else the active toolkit's version."""
    cudart = next((lib for lib in facts.cuda.tf_libraries if lib.name == "cudart" and lib.status == "found"), None)
    if cudart and cudart.path:
        if cudart.via == "wheel" or "site-packages/nvidia" in cudart.path:
            wheel = _wheel(facts, "nvidia-cuda-runtime")
            if wheel:
                return wheel
        owner = next((t for t in facts.cuda.toolkits if t.version and cudart.path.startswith(t.path + "/")), None)
        if owner:
            return owner.version
    toolkits = facts.cuda.toolkits
    active = next((t for t in toolkits if t.active), None) or next(iter(toolkits), None)
    return active.version if active else None


def cudnn_in_use(facts: Facts) -> str | None:
    """The cuDNN TensorFlow resolves (its wheel, or the install in the same folder), else the first one found."""
    lib = next((x for x in facts.cuda.tf_libraries if x.name == "cudnn" and x.status == "found"), None)
    installs = [c for c in facts.cuda.cudnn if c.version]
    if lib and lib.path:
        if lib.via == "wheel" or "site-packages/nvidia" in lib.path:
            wheel = _wheel(facts, "nvidia-cudnn")
            if wheel:
                return wheel
        folder = posixpath.dirname(lib.path)
        same = next((c for c in installs if c.path == lib.path or posixpath.dirname(c.path) == folder), None)
        if same:
            return same.version
    # A system install (header, then library) before a wheel that may belong to another framework's venv.
    ordered = sorted(installs, key=lambda c: {"header": 0, "soname": 1}.get(c.source, 2))
    return ordered[0].version if ordered else None


def _wheel(facts: Facts, prefix: str) -> str | None:
    wheel = next((w for w in facts.cuda.nvidia_wheels if w.name.startswith(prefix) and w.version), None)
    return wheel.version if wheel else None


def tf_build(facts: Facts) -> str | None:
    info = facts.tensorflow.build_info
    if facts.tensorflow.version is None or info is None:
        return None
    if info.is_rocm_build:
        return "ROCm"
    if not info.is_cuda_build:
        return "CPU" if info.is_cuda_build is False else None
    parts = [f"CUDA {info.cuda_version or '?'}"] + ([f"cuDNN {info.cudnn_version}"] if info.cudnn_version else [])
    return ", ".join(parts)

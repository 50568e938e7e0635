"""The stderr notes of `env` and `run` once a SPEC is accepted: things the user should know, none of them an error
(stdout stays exactly what eval reads)."""

from __future__ import annotations

from pathlib import Path

from envdoctor.facts import GpuFacts
from envdoctor.gpus.spec import Chosen, free_memory, memory_limit_note, mig_note, usable_devices
from envdoctor.gpus.table import mib

PREFIX = "envdoctor: "


def _chosen(env: dict[str, str], gpus: list[GpuFacts]) -> list[Chosen]:
    """The devices that CUDA_VISIBLE_DEVICES of env names, in its order."""
    by_uuid = {d.uuid: d for d in usable_devices(gpus)}
    return [by_uuid[u] for u in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if u in by_uuid]


def busy_note(device: Chosen) -> str | None:
    """A GPU chosen by index or UUID may already run other jobs: say whose and how full it is."""
    g = device.gpu
    if device.mig or not g.processes:  # NVML lists processes per GPU, not per MIG device: unknown there
        return None
    pids = ", ".join(str(p.pid) for p in g.processes)
    util = "" if g.utilization_gpu is None else f", {g.utilization_gpu}% busy"
    return (
        f"{PREFIX}note: GPU {device.label} already runs compute processes (pid {pids}; "
        f"{mib(g.memory_used_bytes)} of {mib(g.memory_total_bytes)} MiB used{util})"
    )


def free_memory_warning(device: Chosen, memory_limit_mb: int | None) -> str | None:
    """A cap above what is free now is no error (the memory may be freed by then), but TF's grab would fail."""
    if memory_limit_mb is None or device.mig or device.gpu.memory_total_bytes is None:
        return None
    free = free_memory(device.gpu) // 2**20
    if memory_limit_mb <= free:
        return None
    return (
        f"{PREFIX}warning: --memory-limit {memory_limit_mb} MB is more than GPU {device.label} has free now "
        f"({free} MiB): TensorFlow will fail to allocate it unless that memory is freed first"
    )


def from_note(path: Path | None, runs_here: bool) -> str | None:
    """--from reads another machine's GPUs (or a test fixture): its UUIDs may name no GPU of this one."""
    if path is None:
        return None
    yet = ", yet the command runs here" if runs_here else ""
    return f"{PREFIX}note: the GPUs come from {path}, not from this machine{yet} (a UUID it lacks hides all its GPUs)"


def selection_notes(
    env: dict[str, str],
    gpus: list[GpuFacts],
    memory_limit_mb: int | None,
    from_file: Path | None,
    runs_here: bool = False,
) -> list[str]:
    """Every note for an accepted selection, in the order a reader wants them."""
    notes = [from_note(from_file, runs_here)]
    for device in _chosen(env, gpus):
        notes += [busy_note(device), free_memory_warning(device, memory_limit_mb)]
    notes += [mig_note(env), memory_limit_note(env)]
    return [n for n in notes if n]

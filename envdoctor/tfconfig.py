"""configure_tensorflow(): choose GPUs and GPU memory from inside a Python program, before TF uses a GPU.

For programs that cannot set the environment before they start (notebooks, scripts launched by other tools).
Where you can, prefer `envdoctor run --gpus SPEC -- python train.py`: it needs no code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from envdoctor.errors import EnvironmentProblem, UsageError
from envdoctor.facts import GpuFacts
from envdoctor.gpus.spec import MEMORY_LIMIT_VAR, check_memory_limit, parse_spec
from envdoctor.gpus.visible import resolve_visible_devices

log = logging.getLogger("envdoctor")


def configure_tensorflow(
    gpus: str = "all",
    allow_growth: bool = True,
    memory_limit_mb: int | None = None,
    *,
    nvml_gpus: list[GpuFacts] | None = None,
) -> list[Any]:
    """Make only the GPUs of SPEC `gpus` visible to TensorFlow, with memory growth or a memory cap.

    Call it right after `import tensorflow`, before any op runs. Returns the tf.config.PhysicalDevice list
    TensorFlow will use. SPEC is the one of `envdoctor env`: nvidia-smi indices ("0,2"), G:M MIG devices,
    GPU-/MIG- UUIDs or prefixes, "auto:N", "all" or "none".

    How GPUs are matched: TensorFlow numbers its physical GPUs in CUDA's order (under this process's
    CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER), and tf.config.experimental.get_device_details() gives each
    one's name and compute capability only, no PCI bus id or UUID. So envdoctor reads the GPUs from NVML, works
    out CUDA's order exactly as `envdoctor gpus` shows it, and checks every TF device's name and compute
    capability against it; any disagreement is an error rather than a guess. If CUDA_DEVICE_ORDER is unset it is
    set to PCI_BUS_ID first (CUDA reads it when TF initialises CUDA, which happens here), so the numbering is
    nvidia-smi's.

    memory_limit_mb (default: the ENVDOCTOR_TF_MEMORY_LIMIT_MB variable that `envdoctor env --memory-limit`
    emits) creates one logical device per GPU capped at that many MB (tf.config.set_logical_device_configuration);
    TensorFlow cannot combine that with set_memory_growth, so the cap wins over allow_growth.

    The TF1 equivalent (tf.compat.v1 sessions) of configure_tensorflow("0,2", allow_growth=True) is:

        config = tf.compat.v1.ConfigProto(
            gpu_options=tf.compat.v1.GPUOptions(visible_device_list="0,2", allow_growth=True))
        sess = tf.compat.v1.Session(config=config)

    where visible_device_list holds TF's GPU ids: the CUDA ordinals of the GPUs CUDA_VISIBLE_DEVICES leaves
    (nvidia-smi's indices only with it unset and CUDA_DEVICE_ORDER=PCI_BUS_ID). A cap in MB is GPUOptions(experimental=
    GPUOptions.Experimental(virtual_devices=[...VirtualDevices(memory_limit_mb=[4096])])), one entry per visible GPU,
    or per_process_gpu_memory_fraction=0.5 (a fraction).

    Raises ValueError (envdoctor.errors.UsageError) for a bad SPEC or memory limit, and RuntimeError for a state of
    the machine: envdoctor.errors.EnvironmentProblem where TensorFlow sees no GPU for a GPU SPEC (there "none" and
    "all" are logged no-ops) or other GPUs than NVML, a plain RuntimeError if TensorFlow has already initialised
    its devices.
    """
    import tensorflow as tf

    memory_limit_mb = _memory_limit(memory_limit_mb)
    why = None
    if nvml_gpus is None:
        from envdoctor.gpus.snapshot import live_gpus

        nvml_gpus, why = live_gpus()
    selection = parse_spec(gpus, nvml_gpus, why)
    check_memory_limit(selection.devices, memory_limit_mb)
    # CUDA numbers the GPUs once, when TF first lists them: PCI_BUS_ID only helps if it is set before that.
    # If the program listed them already, match under the order CUDA really used.
    numbering = dict(os.environ)
    if not _listed():
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        numbering = dict(os.environ)
    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        if selection.spec in ("none", "all"):
            log.info("envdoctor: TensorFlow sees no GPU; gpus=%r changes nothing", selection.spec)
            return []
        raise EnvironmentProblem(f"gpus={gpus!r}, but TensorFlow sees no GPU (is this a CPU-only TensorFlow?)")
    wanted = _wanted_uuids(selection, nvml_gpus)
    if wanted is None or not wanted:  # all / none: no device has to be identified
        chosen = list(physical) if wanted is None else []
    else:
        details = [tf.config.experimental.get_device_details(p) for p in physical]
        chosen = [physical[i] for i in match_physical(wanted, nvml_gpus, details, numbering)]
    if _initialised():
        if _already_applied(tf, chosen, allow_growth, memory_limit_mb):  # a notebook cell run again
            log.info("envdoctor: TensorFlow's GPUs are already configured as asked")
            return chosen
        raise RuntimeError(
            "TensorFlow has already initialised its devices: call envdoctor.configure_tensorflow() right after "
            "`import tensorflow`, before any op runs (or use `envdoctor run --gpus SPEC -- python ...`)"
        )
    _apply(tf, physical, chosen, allow_growth, memory_limit_mb)
    return chosen


def _context() -> Any:
    from tensorflow.python.eager import context  # private, but the only way to ask without initialising

    return context.context()


def _initialised() -> bool:
    """TF created its runtime context (an op ran): device settings can no longer change."""
    return getattr(_context(), "_context_handle", None) is not None


def _listed() -> bool:
    """TF enumerated the physical devices (list_physical_devices ran): CUDA's numbering is fixed."""
    return getattr(_context(), "_physical_devices", None) is not None


def _already_applied(tf: Any, chosen: list[Any], allow_growth: bool, memory_limit_mb: int | None) -> bool:
    """The initialised runtime already has exactly these visible GPUs, caps and growth settings."""
    if [d.name for d in tf.config.get_visible_devices("GPU")] != [d.name for d in chosen]:
        return False
    for device in chosen:
        logical = tf.config.get_logical_device_configuration(device) or []
        if memory_limit_mb is not None:
            if [c.memory_limit for c in logical] != [memory_limit_mb]:
                return False
        elif logical or bool(tf.config.experimental.get_memory_growth(device)) != allow_growth:
            return False
    return True


def _memory_limit(value: int | None) -> int | None:
    if value is None and os.environ.get(MEMORY_LIMIT_VAR):
        try:
            value = int(os.environ[MEMORY_LIMIT_VAR])
        except ValueError:
            raise UsageError(f"{MEMORY_LIMIT_VAR}={os.environ[MEMORY_LIMIT_VAR]!r} is not a number of MB") from None
    if value is not None and value <= 0:
        raise UsageError(f"memory_limit_mb must be positive, not {value}")
    return value


def _wanted_uuids(selection: Any, nvml_gpus: list[GpuFacts]) -> list[str] | None:
    """UUIDs to keep, or None for every GPU TF sees."""
    if selection.all_gpus:
        return None
    if selection.auto is not None:
        from envdoctor.gpus.lock import pick_auto

        return [c.uuid for c in pick_auto(selection.auto, lambda: nvml_gpus)]
    return selection.uuids


def match_physical(
    wanted: list[str] | None, nvml_gpus: list[GpuFacts], details: list[Mapping[str, Any]], env: Mapping[str, str]
) -> list[int]:
    """Positions in TF's physical GPU list of the wanted UUIDs (None: all), checked by name and capability."""
    res = resolve_visible_devices(env.get("CUDA_VISIBLE_DEVICES"), nvml_gpus, env.get("CUDA_DEVICE_ORDER"))
    if len(details) != len(res.devices):
        raise EnvironmentProblem(
            f"TensorFlow sees {len(details)} GPU(s) but NVML and CUDA_VISIBLE_DEVICES give "
            f"{len(res.devices)}: cannot match them safely"
        )
    if not res.order_exact:
        raise EnvironmentProblem(
            "CUDA's FASTEST_FIRST order is uncertain on this mix of GPU models: "
            "set CUDA_DEVICE_ORDER=PCI_BUS_ID before TensorFlow starts"
        )
    for dev, info in zip(res.devices, details, strict=True):
        _check_same(dev.gpu, info)
    by_uuid = {d.uuid: d.ordinal for d in res.devices}
    if wanted is None:
        return [d.ordinal for d in res.devices]
    missing = [u for u in wanted if u not in by_uuid]
    if missing:
        raise EnvironmentProblem(
            f"{', '.join(missing)} hidden from this process by CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r}"
        )
    return [by_uuid[u] for u in wanted]


def _check_same(gpu: GpuFacts, info: Mapping[str, Any]) -> None:
    cc = info.get("compute_capability")
    tf_cc = f"{cc[0]}.{cc[1]}" if isinstance(cc, (tuple, list)) and len(cc) == 2 else None
    name = info.get("device_name")
    if (tf_cc and gpu.compute_capability and tf_cc != gpu.compute_capability) or (
        name and gpu.name and name != gpu.name and not gpu.mig_enabled
    ):
        raise EnvironmentProblem(
            f"TensorFlow's GPU ({name}, {tf_cc}) is not NVML's GPU {gpu.index} "
            f"({gpu.name}, {gpu.compute_capability}) at that position: refusing to guess"
        )


def _apply(tf: Any, physical: list[Any], chosen: list[Any], allow_growth: bool, memory_limit_mb: int | None) -> None:
    try:
        tf.config.set_visible_devices(chosen, "GPU")
        for device in chosen:
            if memory_limit_mb is not None:
                config = tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit_mb)
                tf.config.set_logical_device_configuration(device, [config])
            elif allow_growth:
                tf.config.experimental.set_memory_growth(device, True)
    except RuntimeError as exc:  # TF's own "cannot be modified after being initialized"
        raise RuntimeError(f"TensorFlow has already initialised its GPUs: {exc}") from exc
    log.info(
        "envdoctor: TensorFlow uses %d of %d GPU(s): %s",
        len(chosen),
        len(physical),
        ", ".join(d.name for d in chosen) or "none (CPU only)",
    )

"""Environment variables that change how CUDA, TensorFlow and the loader behave (facts only, no judgement)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from envdoctor.facts import EnvFacts, Facts
from envdoctor.probes import ProbeContext

# Recorded when set, even to "" (an empty CUDA_VISIBLE_DEVICES hides every GPU).
VARIABLES = (
    # CUDA device selection and numbering (CUDA Programming Guide, "CUDA Environment Variables").
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUDA_MODULE_LOADING",
    "CUDA_CACHE_DISABLE",
    "CUDA_CACHE_MAXSIZE",
    # TensorFlow runtime knobs (gpu_bfc_allocator.cc, util/port.cc, platform/default/logging.cc).
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_GPU_ALLOCATOR",
    "TF_GPU_THREAD_MODE",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_DISABLE_MKL",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_CPP_MAX_VLOG_LEVEL",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "TF_USE_LEGACY_KERAS",
    "KERAS_BACKEND",
    # Where CUDA is looked for (nvcc, TF's build, bitsandbytes-style finders).
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_ROOT",
    "CUDNN_PATH",
    # NVIDIA Container Toolkit.
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    # The dynamic loader and the Python environment.
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    # Set by WSL inside each distribution: names it in the WSL1 -> WSL2 conversion command.
    "WSL_DISTRO_NAME",
    # Threading (oneDNN/OpenMP) and JAX's own GPU memory knobs.
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
)

# A PATH entry matters to CUDA when its name says so or it holds nvcc (which toolkit builds use). nvidia-smi
# does not count: the driver puts it in /usr/bin, which would list /usr/bin and /bin on every GPU machine.
_PATH_WORDS = ("cuda", "nvidia", "/usr/lib/wsl/lib")
_PATH_PROGRAMS = ("nvcc",)


def probe(ctx: ProbeContext, facts: Facts) -> None:
    facts.env = env_facts(ctx.env, ctx)


def env_facts(env: Mapping[str, str], ctx: ProbeContext | None = None) -> EnvFacts:
    """The behaviour-changing variables that are set, LD_LIBRARY_PATH split, and CUDA-relevant PATH entries."""
    variables = {name: env[name] for name in VARIABLES if name in env}
    ld_path = env.get("LD_LIBRARY_PATH")
    path = env.get("PATH") or ""
    return EnvFacts(
        variables=variables,
        # Kept verbatim, empty entries included: the loader reads an empty entry as the current directory.
        ld_library_path=ld_path.split(os.pathsep) if ld_path is not None else [],
        path_cuda_entries=[e for e in dict.fromkeys(path.split(os.pathsep)) if e and _cuda_relevant(e, ctx)],
    )


def _cuda_relevant(entry: str, ctx: ProbeContext | None) -> bool:
    if any(word in entry.lower() for word in _PATH_WORDS):
        return True
    if ctx is None or not os.path.isabs(entry):
        return False
    return any(ctx.fs.isfile(os.path.join(entry, program)) for program in _PATH_PROGRAMS)

"""The facts a probe reads off a machine: plain, serialisable dataclasses.

Absent means None. A probe that fails records a ProbeError instead of raising. A Facts snapshot can be
saved as JSON on one machine (`check --save`) and diagnosed on another (`check --from`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

SCHEMA_VERSION = 1

# The closed sets of values some facts take: a snapshot holding anything else is malformed (from_dict refuses it),
# and docs/check.schema.json lists them as enums.
PackageManager = Literal["apt", "dnf", "yum", "zypper", "pacman"]
PythonEnv = Literal["venv", "conda", "system"]
ContainerKind = Literal["docker", "podman", "kubernetes", "container"]
WslVersion = Literal[1, 2]
ModuleFlavour = Literal["open", "proprietary"]
GpuSource = Literal["nvml", "nvidia-smi"]
NvmlErrorKind = Literal[
    "library_not_found",
    "driver_not_loaded",
    "lib_rm_version_mismatch",
    "no_permission",
    "gpu_lost",
    "timeout",
    "unknown",
]
VersionSource = Literal["version.json", "version.txt", "libcudart", "cuda.h", "nvcc"]
WheelLayout = Literal["cu12", "cu13"]  # nvidia/<lib>/lib, or nvidia/cu13/lib
LibraryStatus = Literal["found", "missing", "off_loader_path"]
LoaderVia = Literal["ld.so.cache", "LD_LIBRARY_PATH", "wheel", "rpath"]
OnOff = Literal["on", "off"]


@dataclass
class ProbeError:
    probe: str
    message: str


@dataclass
class SystemFacts:
    os: str | None = None  # platform.system(): "Linux", "Windows", "Darwin"
    distro_id: str | None = None  # "ubuntu", "rocky", "amzn"
    distro_version: str | None = None
    distro_name: str | None = None  # pretty name
    distro_like: list[str] = field(default_factory=list)  # ID_LIKE, e.g. ["rhel", "fedora"]
    package_manager: PackageManager | None = None
    kernel: str | None = None
    glibc: str | None = None
    arch: str | None = None  # x86_64 | aarch64
    python_version: str | None = None
    python_executable: str | None = None
    python_env: PythonEnv | None = None
    container: ContainerKind | None = None
    container_engines: list[str] | None = None  # docker / podman programs on this machine (None: not looked)
    wsl: WslVersion | None = None  # under Windows Subsystem for Linux
    hostname: str | None = None
    user: str | None = None
    home: str | None = None
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None


@dataclass
class CpuFacts:
    arch: str | None = None
    vendor: str | None = None  # GenuineIntel | AuthenticAMD | ARM implementer name
    model: str | None = None
    sockets: int | None = None
    cores: int | None = None  # physical cores
    threads: int | None = None  # logical CPUs
    max_mhz: float | None = None
    flags: list[str] = field(default_factory=list)  # raw flags/Features line
    features: list[str] = field(default_factory=list)  # canonical DL-relevant names: "AVX2", "AVX512F", "SVE"…
    psabi_level: int | None = None  # x86-64 psABI level 1–4
    peak_gflops_fp32_estimate: float | None = None
    peak_basis: str | None = None  # how the estimate was computed


@dataclass
class PciGpu:
    address: str  # 0000:01:00.0
    vendor_id: str  # 0x10de
    device_id: str
    class_code: str  # 0x030000 (VGA) / 0x030200 (3D)
    driver: str | None = None  # bound kernel driver: nvidia | nouveau | vfio-pci | None


@dataclass
class NvmlError:
    kind: NvmlErrorKind
    message: str


@dataclass
class DriverLibrary:
    path: str  # /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14
    version: str | None = None  # 550.54.14, from the file name


@dataclass
class DriverFacts:
    kernel_module_version: str | None = None  # from /proc/driver/nvidia/version
    kernel_module_flavour: ModuleFlavour | None = None
    userspace_version: str | None = None  # from NVML (or nvidia-smi)
    cuda_driver_version: str | None = None  # highest CUDA the driver supports, "13.0"
    nvidia_module_loaded: bool = False
    nouveau_loaded: bool = False
    secure_boot: bool | None = None
    pci_gpus: list[PciGpu] = field(default_factory=list)
    nvml_error: NvmlError | None = None
    gpu_source: GpuSource | None = None  # where the GPU list came from
    nvidia_smi_error: str | None = None
    # /dev/nvidia* names (nvidia0, nvidiactl, nvidia-uvm); None where /dev is no live device directory (--root of
    # an image, an old snapshot): unknown, not "none".
    device_nodes: list[str] | None = None
    # Under WSL2 only: a Linux driver's libcuda/libnvidia-ml files outside /usr/lib/wsl/lib (None: not looked).
    wsl_linux_libraries: list[DriverLibrary] | None = None
    # The NVIDIA Container Toolkit's programs found (nvidia-ctk, nvidia-container-cli...); None: not looked.
    container_toolkit: list[str] | None = None


@dataclass
class GpuProcess:
    pid: int
    used_memory_bytes: int | None = None
    name: str | None = None


@dataclass
class MigDevice:
    index: int
    uuid: str
    memory_total_bytes: int | None = None
    name: str | None = None


@dataclass
class GpuFacts:
    index: int  # NVML index = nvidia-smi's (PCI bus order)
    name: str
    uuid: str
    pci_bus_id: str  # 00000000:01:00.0
    compute_capability: str | None = None  # "9.0"
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    utilization_gpu: int | None = None  # percent
    mig_enabled: bool | None = None
    mig_devices: list[MigDevice] = field(default_factory=list)
    # Why NVML could not list the MIG devices (no permission, not supported…): mig_devices is then unknown,
    # not empty. None when the listing worked (an empty slot answers NOT_FOUND, which is no error).
    mig_devices_error: str | None = None
    processes: list[GpuProcess] = field(default_factory=list)
    max_sm_clock_mhz: int | None = None
    cuda_cores: int | None = None


@dataclass
class CudaToolkit:
    path: str
    version: str | None = None
    version_source: VersionSource | None = None
    nvcc: str | None = None
    found_via: list[str] = field(default_factory=list)  # /usr/local, CUDA_HOME, CUDA_PATH, PATH, conda
    active: bool = False  # the one nvcc on PATH / CUDA_HOME points at


@dataclass
class CudnnInstall:
    path: str
    version: str | None = None
    source: str = "header"  # header | soname | wheel


@dataclass
class NvidiaWheel:
    name: str  # distribution, e.g. nvidia-cudnn-cu12
    version: str | None = None
    lib_dir: str | None = None
    layout: WheelLayout | None = None


@dataclass
class LibraryResolution:
    name: str  # cudart
    soname: str  # libcudart.so.12
    status: LibraryStatus
    path: str | None = None
    via: LoaderVia | None = None
    candidates: list[str] = field(default_factory=list)  # on disk but not loadable


@dataclass
class CudaFacts:
    toolkits: list[CudaToolkit] = field(default_factory=list)
    cudnn: list[CudnnInstall] = field(default_factory=list)
    nvidia_wheels: list[NvidiaWheel] = field(default_factory=list)
    tf_libraries: list[LibraryResolution] = field(default_factory=list)


@dataclass
class TfBuildInfo:
    is_cuda_build: bool | None = None
    is_rocm_build: bool | None = None
    cuda_version: str | None = None
    cudnn_version: str | None = None
    cuda_compute_capabilities: list[str] = field(default_factory=list)  # ["sm_60", "compute_90"]
    cpu_compiler: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class PythonPackage:
    name: str
    version: str | None = None
    location: str | None = None
    # Its METADATA Requires-Dist lines, verbatim; read only for TensorFlow's own distributions and tf-keras.
    requires_dist: list[str] = field(default_factory=list)


@dataclass
class TensorflowFacts:
    python_executable: str | None = None  # the interpreter inspected (--python)
    python_version: str | None = None
    distributions: list[PythonPackage] = field(default_factory=list)  # tensorflow, tensorflow-cpu, tf-nightly…
    version: str | None = None
    location: str | None = None  # site-packages/tensorflow
    build_info: TfBuildInfo | None = None
    related: list[PythonPackage] = field(default_factory=list)  # keras, tf-keras, torch, jax, jaxlib
    site_packages: list[str] = field(default_factory=list)
    error: str | None = None
    python_env: PythonEnv | None = None  # of the inspected interpreter
    externally_managed: bool | None = None  # PEP 668: pip refuses to install into it (None: unknown)
    # The installed distributions TensorFlow's (and tf-keras's) Requires-Dist name, as `import` finds them: the
    # first on the environment's import path (a user's ~/.local shadows the env). One named but absent is missing.
    requirements: list[PythonPackage] = field(default_factory=list)
    requirements_path: list[str] = field(default_factory=list)  # the import path those were looked up on


@dataclass
class DeepFacts:
    """What importing TensorFlow in a subprocess said (check --deep)."""

    returncode: int | None = None
    signal: str | None = None  # SIGILL, SIGSEGV…
    timed_out: bool = False
    seconds: float | None = None
    tf_version: str | None = None
    missing_cpu_instructions: list[str] = field(default_factory=list)
    onednn_enabled: bool | None = None
    gpus: list[str] = field(default_factory=list)
    failed_libraries: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # TF's notable log lines, verbatim (evidence)
    error: str | None = None  # why it did not run or why the import failed (ImportError text)
    output_tail: str = ""


@dataclass
class EnvFacts:
    variables: dict[str, str] = field(default_factory=dict)  # only the behaviour-changing ones that are set
    ld_library_path: list[str] = field(default_factory=list)
    path_cuda_entries: list[str] = field(default_factory=list)


@dataclass
class TuneFacts:
    """What `envdoctor smoke-test --tune` measured on this machine for its CPU model and TensorFlow version: read
    from its cache on the live host only, so that a snapshot or a --root tree never cites this machine's result."""

    onednn_ratio: float | None = None  # images/s with oneDNN flipped, over images/s as TensorFlow starts
    onednn_versus: OnOff | None = None  # the state it was compared with
    rounds: int | None = None  # interleaved rounds behind the ratio
    measured_at: str | None = None
    tf_version: str | None = None
    unreliable: bool = False  # other work shared the machine during the legs


@dataclass
class Facts:
    schema_version: int = SCHEMA_VERSION
    envdoctor_version: str | None = None
    collected_at: str | None = None
    root: str = "/"
    host: bool = True  # False under --root: no commands, no NVML were used
    system: SystemFacts = field(default_factory=SystemFacts)
    cpu: CpuFacts = field(default_factory=CpuFacts)
    driver: DriverFacts = field(default_factory=DriverFacts)
    gpus: list[GpuFacts] = field(default_factory=list)
    cuda: CudaFacts = field(default_factory=CudaFacts)
    tensorflow: TensorflowFacts = field(default_factory=TensorflowFacts)
    env: EnvFacts = field(default_factory=EnvFacts)
    deep: DeepFacts | None = None
    tune: TuneFacts | None = None
    probe_errors: list[ProbeError] = field(default_factory=list)
    probe_seconds: dict[str, float] = field(default_factory=dict)


_SURROGATE = re.compile("[\ud800-\udfff]")


def printable_strings(value: Any) -> Any:
    """The same tree with every lone surrogate replaced by U+FFFD, dataclasses changed in place.

    A file name that is not UTF-8 reaches Python as surrogate escapes (os.listdir's surrogateescape): the probes
    need them to open that file, but no output can encode them, so the facts keep a printable form."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [printable_strings(v) for v in value]
    if isinstance(value, dict):
        return {printable_strings(k): printable_strings(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            setattr(value, f.name, printable_strings(getattr(value, f.name)))
    return value


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


T = TypeVar("T")


def from_dict(cls: type[T], data: Any) -> T:
    """Rebuild a dataclass tree from to_dict() output; unknown keys are ignored, missing ones defaulted.

    A value of the wrong type (a hand-edited or foreign snapshot) raises TypeError, so that the checks never see
    a string where a list of GPUs should be. Numbers are accepted where text is expected ("24.04" written bare).
    """
    return typing.cast(T, _build(cls, data, cls.__name__))


@functools.cache
def _type_hints(tp: type) -> dict[str, Any]:
    """typing.get_type_hints, once per class: it compiles every annotation again on each call, which made
    loading a snapshot cost ~70 ms (`envdoctor fleet` loads a thousand)."""
    return typing.get_type_hints(tp)


_SCALARS: dict[Any, tuple[type, ...]] = {str: (str, int, float), int: (int,), float: (int, float), bool: (bool,)}


def _build(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if value is None:
        _expect(tp is Any or type(None) in typing.get_args(tp), where, "a value", value)
        return None
    if origin is Literal:
        _expect(value in typing.get_args(tp), where, f"one of {list(typing.get_args(tp))}", value)
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(args[0], value, where) if len(args) == 1 else value
    if origin is list:
        (item,) = typing.get_args(tp)
        _expect(isinstance(value, list), where, "a list", value)
        return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        _expect(isinstance(value, dict), where, "an object", value)
        return {str(k): _build(item, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        _expect(isinstance(value, dict), where, "an object", value)
        hints = _type_hints(tp)
        # A null where the field cannot be null counts as missing: the field keeps its default.
        fields = [
            f.name
            for f in dataclasses.fields(tp)
            if f.name in value and (value[f.name] is not None or type(None) in typing.get_args(hints[f.name]))
        ]
        return tp(**{name: _build(hints[name], value[name], f"{where}.{name}") for name in fields})
    if tp in _SCALARS:
        ok = isinstance(value, _SCALARS[tp]) and (tp is bool or not isinstance(value, bool))
        _expect(ok, where, tp.__name__, value)
        return str(value) if tp is str else value
    return value  # Any


def _expect(ok: bool, where: str, wanted: str, value: Any) -> None:
    if not ok:
        raise TypeError(f"{where}: expected {wanted}, got {type(value).__name__}")

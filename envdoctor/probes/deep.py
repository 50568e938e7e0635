"""`check --deep`: import TensorFlow in a child of the inspected interpreter and read what it says.

The child may crash (SIGILL on a CPU without AVX), hang, or log why it skipped the GPU; all of it is a
diagnosis. Parsing is a pure function over the recorded output, so it is tested on real log texts.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import tempfile

from envdoctor.facts import DeepFacts, Facts
from envdoctor.probes import ProbeContext
from envdoctor.runner import run_command

TIMEOUT = 60.0
MARKER = "ENVDOCTOR_DEEP "
IMPORT_ERROR = "ENVDOCTOR_IMPORT_ERROR "

# Self-contained (no envdoctor import): runs in the inspected interpreter. Listing physical devices
# enumerates GPUs (and dlopens the CUDA libraries) without creating a CUDA context or allocating memory.
SCRIPT = """\
import json, sys
try:
    import tensorflow as tf
except BaseException as exc:
    print("ENVDOCTOR_IMPORT_ERROR " + json.dumps("%s: %s" % (type(exc).__name__, exc)), flush=True)
    sys.exit(3)
out = {"version": getattr(tf, "__version__", None), "gpus": []}
try:
    for dev in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(dev)
        except Exception:
            details = {}
        cc = details.get("compute_capability")
        out["gpus"].append({"name": dev.name, "device_name": details.get("device_name"),
                            "compute_capability": list(cc) if cc else None})
except Exception as exc:
    out["device_error"] = "%s: %s" % (type(exc).__name__, exc)
print("ENVDOCTOR_DEEP " + json.dumps(out), flush=True)
"""

# TF's cpu_feature_guard wording changed across versions (tensorflow/core/platform/cpu_feature_guard.cc):
_MISSING_CPU = (
    # TF >= ~2.9 x86 wheels: "...To enable the following instructions: AVX2 FMA, in other operations, rebuild..."
    re.compile(r"To enable the following instructions:\s*([A-Z0-9_. ]+?)\s*, in other operations"),
    # TF 1.x - ~2.3: "Your CPU supports instructions that this TensorFlow binary was not compiled to use: AVX2 FMA"
    re.compile(r"not compiled to use:\s*([A-Z0-9_. ]+)"),
    # ~2.4 - 2.8: "...(oneDNN) to use the following CPU instructions in performance-critical operations:  AVX2 FMA"
    re.compile(r"to use the following CPU instructions in performance-critical operations:\s*([A-Z0-9_. ]+)"),
)
# TF prints SSE4.1/SSE4.2; CpuFacts.features (recipes/cpu_features.json) spells them SSE4_1/SSE4_2.
_CANONICAL = {"SSE4.1": "SSE4_1", "SSE4.2": "SSE4_2"}
_ONEDNN_ON = "oneDNN custom operations are on"
_FAILED_LIBRARY = re.compile(r"Could not load dynamic library '([^']+)'")
_DLERROR_MISSING = re.compile(r"dlerror: (lib[\w.+-]+\.so[\w.]*): cannot open shared object file")
_NOTABLE = (
    "cpu_feature_guard",
    "optimized to use available CPU instructions",
    "not compiled to use",
    "To enable the following instructions",
    _ONEDNN_ON,
    "Could not load dynamic library",
    "Cannot dlopen some GPU libraries",
    "Skipping registering GPU devices",
    "Could not find cuda drivers",
    "Error loading CUDA libraries",
    "aren't available on your machine",
    "Illegal instruction",
    "Created device",
    "does not match DSO version",
    "failed call to cuInit",
    "Ignoring visible gpu device",  # compute capability or core count below this build's minimum
    "CUDA driver version is insufficient",
)
CPU_GUARD_FATAL = "aren't available on your machine"  # cpu_feature_guard's message before it aborts


def probe(ctx: ProbeContext, facts: Facts) -> None:
    python = ctx.python or sys.executable
    if not ctx.host:
        facts.deep = DeepFacts(error="not run: --root given (nothing on the inspected system can be executed)")
        return
    tf = facts.tensorflow
    if not tf.error and not tf.distributions and tf.location is None:
        facts.deep = DeepFacts(error=f"TensorFlow is not installed for {python}")
        return
    env = dict(ctx.env)
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # the INFO lines (cpu_feature_guard, oneDNN) are the evidence
    # Since TF 2.13 (tsl's dso_loader) "Could not load dynamic library" is a VLOG(1) line: ask for it.
    env["TF_CPP_VMODULE"] = ",".join(filter(None, [env.get("TF_CPP_VMODULE"), "dso_loader=1"]))
    # From a temporary directory: `python -c` puts the working directory first on sys.path, and a TensorFlow
    # source checkout there (a build-tf recipe folder) would be imported instead of the installed one.
    result = run_command([python, "-c", SCRIPT], timeout=TIMEOUT, env=env, cwd=tempfile.gettempdir())
    facts.deep = parse_import_output(result.stdout, result.stderr, result.returncode, result.error)
    facts.deep.seconds = round(result.seconds, 2)


def parse_import_output(stdout: str, stderr: str, returncode: int | None, error: str | None = None) -> DeepFacts:
    """What the child said: its answer line, TF's log lines, and how it ended. Never raises."""
    deep = DeepFacts(returncode=returncode, timed_out=bool(error and error.startswith("timeout")))
    text = f"{stderr}\n{stdout}"
    answer = _answer(stdout)
    if error:
        deep.error = error
    elif IMPORT_ERROR in stdout:
        deep.error = _import_error(stdout)
    deep.signal = _signal(returncode, text)
    if answer is not None:
        deep.tf_version = _str(answer.get("version"))
        deep.gpus = _gpus(answer.get("gpus"))
        if answer.get("device_error"):
            deep.error = f"listing GPUs failed: {answer['device_error']}"
    deep.missing_cpu_instructions = missing_cpu_instructions(text)
    deep.onednn_enabled = True if _ONEDNN_ON in text else (False if answer is not None else None)
    deep.failed_libraries = _failed_libraries(text)
    deep.messages = [line.strip()[:400] for line in text.splitlines() if any(n in line for n in _NOTABLE)][:40]
    tail = "\n".join(line for line in text.splitlines() if not line.startswith((MARKER, IMPORT_ERROR)))
    deep.output_tail = tail.strip()[-4000:]
    return deep


def missing_cpu_instructions(text: str) -> list[str]:
    """CPU instructions the CPU has but the TensorFlow binary was not compiled for (cpu_feature_guard)."""
    names: list[str] = []
    for pattern in _MISSING_CPU:
        for match in pattern.finditer(text):
            tokens = [t.rstrip(".") for t in match.group(1).split()]
            names += [_CANONICAL.get(t, t) for t in tokens if len(t) >= 3 and re.fullmatch(r"[A-Z][A-Z0-9_.]*", t)]
    return list(dict.fromkeys(names))


def _answer(stdout: str) -> dict[str, object] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _import_error(stdout: str) -> str:
    line = (stdout[stdout.index(IMPORT_ERROR) + len(IMPORT_ERROR) :].splitlines() or [""])[0]
    try:
        message = json.loads(line)
    except ValueError:
        message = line
    return f"import tensorflow failed: {message}"[:1000]


def _signal(returncode: int | None, text: str) -> str | None:
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    # Through a shell wrapper (pyenv shims, conda run) a signal death becomes exit code 128 + N.
    if returncode is not None and returncode > 128 and "Illegal instruction" in text:
        return "SIGILL"
    if returncode is not None and returncode > 128 and CPU_GUARD_FATAL in text:
        return "SIGABRT"
    return None


def _gpus(value: object) -> list[str]:
    gpus = []
    for gpu in value if isinstance(value, list) else []:
        if not isinstance(gpu, dict):
            continue
        label = str(gpu.get("name") or "GPU")
        cc = gpu.get("compute_capability")
        details = [str(gpu["device_name"])] if gpu.get("device_name") else []
        if isinstance(cc, list) and len(cc) == 2:
            details.append(f"compute capability {cc[0]}.{cc[1]}")
        gpus.append(f"{label} ({', '.join(details)})" if details else label)
    return gpus


def _failed_libraries(text: str) -> list[str]:
    # Both the library TF asked for and, when different, the dependency the loader could not find
    # ("Could not load dynamic library 'libcusolver.so.11'; dlerror: libnvJitLink.so.12: cannot open...").
    found = []
    for line in text.splitlines():
        found += _FAILED_LIBRARY.findall(line)
        if "Could not load dynamic library" in line:
            found += _DLERROR_MISSING.findall(line)
    return list(dict.fromkeys(found))


def _str(value: object) -> str | None:
    return str(value) if value else None

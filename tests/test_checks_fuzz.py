"""No check crashes on odd facts: a snapshot (`check --from`) may come from any machine or be hand-edited."""

from __future__ import annotations

from checks_support import fix_convention_violations, h100, tensorflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envdoctor.checks import run_checks
from envdoctor.facts import (
    CudaToolkit,
    CudnnInstall,
    DeepFacts,
    Facts,
    LibraryResolution,
    NvmlError,
    PythonPackage,
    from_dict,
    to_dict,
)

odd = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["", "N/A", "12", "12.", "2.21.0rc1", "580.159.04", "9.0", "sm_", "compute_9x", "13.0", "3.14"]),
)
status = st.sampled_from(["found", "missing", "off_loader_path", "weird"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    driver=st.tuples(odd, odd, odd),
    gpu=st.tuples(odd, st.integers(-1, 2**40) | st.none()),
    tf=st.tuples(odd, odd, odd, st.lists(odd.filter(bool), max_size=4), st.booleans() | st.none()),
    libs=st.lists(st.tuples(odd, odd, status, odd), max_size=3),
    env=st.dictionaries(
        st.sampled_from(
            ["CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "TF_FORCE_GPU_ALLOW_GROWTH", "TF_ENABLE_ONEDNN_OPTS"]
        ),
        st.text(max_size=8),
    ),
    nvml=st.sampled_from([None, "library_not_found", "driver_not_loaded", "lib_rm_version_mismatch", "gpu_lost", "x"]),
    deep=st.none() | st.tuples(st.integers(-11, 200) | st.none(), st.booleans(), st.lists(st.text(max_size=8))),
    wsl=st.sampled_from([None, 1, 2]),
)
def test_checks_never_crash(driver, gpu, tf, libs, env, nvml, deep, wsl):
    facts = h100("busy")
    facts.system.wsl = wsl
    facts.driver.kernel_module_version, facts.driver.userspace_version, facts.driver.cuda_driver_version = driver
    facts.driver.nvml_error = NvmlError(nvml, "message") if nvml else None
    facts.gpus[0].compute_capability, facts.gpus[0].memory_used_bytes = gpu
    facts.tensorflow = tensorflow("2.21.0")
    facts.tensorflow.version, facts.tensorflow.python_version = tf[0], tf[1]
    facts.tensorflow.distributions.append(PythonPackage(tf[2] or "tensorflow-cpu", tf[0]))
    facts.tensorflow.build_info.cuda_version = tf[2]
    facts.tensorflow.build_info.cuda_compute_capabilities = tf[3]
    facts.tensorflow.build_info.is_cuda_build = tf[4]
    facts.cuda.tf_libraries = [
        LibraryResolution(name or "cudnn", soname or "libcudnn.so.9", st_, path, candidates=[path] if path else [])
        for name, soname, st_, path in libs
    ]
    facts.cuda.cudnn = [CudnnInstall("/usr/include/cudnn_version.h", tf[1])]
    facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda", tf[2], active=True)]
    facts.env.variables = env
    if deep is not None:
        facts.deep = DeepFacts(returncode=deep[0], timed_out=deep[1], missing_cpu_instructions=deep[2])
    findings = run_checks(facts)
    assert [f for f in findings if f.code == "envdoctor.check-failed"] == []
    assert fix_convention_violations(findings) == []
    assert all(
        f.code.split(".", 1)[0] in {"system", "cpu", "driver", "gpu", "cuda", "tensorflow", "environment"}
        for f in findings
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["system", "cpu", "driver", "gpus", "cuda", "tensorflow", "env", "deep", "probe_seconds"]),
    value=json_values,
)
def test_a_garbled_snapshot_is_rejected_or_read_never_half_typed(field, value):
    """`check --from` on a hand-edited snapshot: from_dict raises TypeError (a usage error), or every fact has
    the type the checks expect, so the checks run without crashing."""
    data = to_dict(h100("busy"))
    data[field] = value
    try:
        facts = from_dict(Facts, data)
    except TypeError:
        return
    found = run_checks(facts)
    assert [f for f in found if f.category == "envdoctor"] == []


def test_a_snapshot_survives_the_round_trip():
    facts = h100("busy")
    facts.tensorflow = tensorflow("2.21.0")
    assert from_dict(Facts, to_dict(facts)) == facts

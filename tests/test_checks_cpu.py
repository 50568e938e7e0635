"""CPU findings over real /proc/cpuinfo files (tests/fixtures/cpuinfo/README.md)."""

from __future__ import annotations

from checks_support import codes, cpu, no_gpu_facts, one, tensorflow

from envdoctor.checks import Severity
from envdoctor.facts import DeepFacts


def _with_tf(cpu_file: str, tf: str = "2.21.0", dist: str = "tensorflow-cpu"):
    facts = no_gpu_facts(cpu_file)
    facts.tensorflow = tensorflow(tf, dist)
    return facts


def test_pentium_without_avx_is_an_error_pointing_to_build_tf():
    facts = _with_tf("x86-pentium-g640-no-avx.txt")
    f = one(facts, "cpu.no-avx")
    assert f.severity is Severity.ERROR
    assert "Illegal instruction" in f.title
    assert f.fix.splitlines()[0] == "envdoctor build-tf"
    assert "SIMD it has: sse4_1 sse4_2 ssse3" in f.evidence
    assert "cpu.ok" not in codes(facts)
    assert "cpu.unused-instructions" not in codes(facts)


def test_zen4_unused_instructions_with_an_honest_gain_note():
    f = one(_with_tf("x86-epyc-9654-zen4.txt"), "cpu.unused-instructions")
    assert f.severity is Severity.INFO
    assert f.title.endswith("AVX2 FMA AVX512F AVX512_VNNI AVX512_BF16")
    assert f.fix.splitlines() == [
        "envdoctor build-tf",
        "# optional; expect a modest gain: oneDNN already uses these instructions in its convolution and "
        "matrix-multiply kernels, a native build speeds up the other (Eigen) ops only",
    ]
    assert any("compiled with -mavx -mf16c only" in e for e in f.evidence)  # 2.21's avx_linux config
    older = one(_with_tf("x86-epyc-9654-zen4.txt", tf="2.20.0"), "cpu.unused-instructions")
    assert any("compiled with -mavx only" in e for e in older.evidence)


def _without_f16c(tf: str | None):
    # A real Skylake-SP's cpuinfo with F16C masked, as a VM with an older CPU model (QEMU's SandyBridge) shows it.
    facts = (
        _with_tf("x86-xeon-gold-6132-skylake-avx512.txt", tf)
        if tf
        else no_gpu_facts("x86-xeon-gold-6132-skylake-avx512.txt")
    )
    facts.cpu.flags = [f for f in facts.cpu.flags if f != "f16c"]
    return facts


def test_avx_without_f16c_cannot_import_the_stock_2_21_wheel():
    f = one(_without_f16c("2.21.0"), "cpu.wheel-instructions-missing")
    assert f.severity is Severity.ERROR and "F16C" in f.title and "Illegal instruction" in f.title
    assert "tensorflow==2.20.*" in f.fix and "envdoctor build-tf" in f.fix
    assert "cpu.wheel-instructions-missing" not in codes(_without_f16c("2.20.0"))  # -mavx only up to 2.20
    nothing_yet = one(_without_f16c(None), "cpu.wheel-instructions-missing")  # `pip install tensorflow` brings 2.21
    assert nothing_yet.severity is Severity.WARNING and "would die on import" in nothing_yet.title


def test_deep_log_overrides_the_assumption():
    facts = _with_tf("x86-epyc-9654-zen4.txt")
    # The list TF 2.21's cpu_feature_guard prints on a Zen 4: it is what the binary says, so it wins.
    facts.deep = DeepFacts(
        returncode=0, missing_cpu_instructions=["AVX2", "AVX512F", "AVX512_VNNI", "AVX512_BF16", "FMA"]
    )
    f = one(facts, "cpu.unused-instructions")
    assert f.title.endswith("AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA")
    assert any("import log" in e for e in f.evidence)


def test_onednn_default_on_with_vnni():
    f = one(_with_tf("x86-xeon-platinum-8260m-cascadelake.txt"), "cpu.onednn-on")
    assert f.evidence[0] == "default on: the CPU has AVX512_VNNI"
    assert f.fix is None  # nothing to fix; the note on numerics is evidence
    assert any("TF_ENABLE_ONEDNN_OPTS=0" in e for e in f.evidence)


def test_onednn_default_on_with_avx_vnni_client_cpu():
    f = one(_with_tf("x86-core-ultra-9-285.txt"), "cpu.onednn-on")
    assert "AVX_VNNI" in f.evidence[0]


def test_onednn_default_off_on_zen3_and_env_override():
    facts = _with_tf("x86-ryzen9-5950x-zen3.txt")
    f = one(facts, "cpu.onednn-off")
    assert "default off" in f.evidence[0]
    assert f.fix == "export TF_ENABLE_ONEDNN_OPTS=1\n# optional: often faster on the CPU"
    facts.env.variables["TF_ENABLE_ONEDNN_OPTS"] = "1"
    on = one(facts, "cpu.onednn-on")
    assert "TF_ENABLE_ONEDNN_OPTS=1 overrides the default" in on.evidence


def test_onednn_not_reported_for_tf_before_the_default():
    facts = no_gpu_facts("x86-ryzen9-5950x-zen3.txt")
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.tensorflow.version = "2.8.0"
    assert not {"cpu.onednn-on", "cpu.onednn-off"} & codes(facts)


def test_no_tf_means_no_tf_cpu_findings_and_an_ok_line():
    facts = no_gpu_facts("x86-epyc-9654-zen4.txt")
    ok = one(facts, "cpu.ok")
    assert ok.title == "AMD EPYC 9654 96-Core Processor, 96 cores / 96 threads, x86-64-v4"
    assert any(e.startswith("peak FP32 ≈ 7373 GFLOP/s") for e in ok.evidence)
    assert not {"cpu.unused-instructions", "cpu.onednn-on", "cpu.onednn-off"} & codes(facts)


def test_aarch64_has_no_avx_findings():
    facts = no_gpu_facts("x86-epyc-9654-zen4.txt")
    facts.cpu = cpu("arm64-graviton3-neoverse-v1.txt", "aarch64")
    facts.system.arch = "aarch64"
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    assert "cpu.no-avx" not in codes(facts)
    assert one(facts, "cpu.ok").severity is Severity.OK


def test_deep_run_without_the_message_means_nothing_unused():
    facts = _with_tf("x86-epyc-9654-zen4.txt")
    facts.deep = DeepFacts(returncode=0, missing_cpu_instructions=[])  # e.g. a -march=native build
    assert "cpu.unused-instructions" not in codes(facts)


def test_onednn_default_on_windows_x86_follows_the_release():
    # PR #61878 (TF 2.15) made oneDNN the default on Windows x86 whatever the CPU; 2.9-2.14 left it off there.
    facts = _with_tf("x86-ryzen9-5950x-zen3.txt")
    facts.system.os = "Windows"
    assert one(facts, "cpu.onednn-on").evidence[0] == "default on on Windows x86 since TensorFlow 2.15"
    facts.tensorflow.version = "2.14.1"
    assert one(facts, "cpu.onednn-off").evidence[0] == "default off on Windows x86 before TensorFlow 2.15"


def test_no_onednn_finding_on_macos():
    facts = _with_tf("x86-xeon-platinum-8260m-cascadelake.txt")
    facts.system.os = "Darwin"
    assert not {"cpu.onednn-on", "cpu.onednn-off"} & codes(facts)

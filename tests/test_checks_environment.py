"""Environment-variable findings over real GPU inventories (H100 capture, tests/fixtures/gpus/*.json)."""

from __future__ import annotations

from checks_support import codes, gpus_fixture, h100, no_gpu_facts, one

from envdoctor.checks import Severity
from envdoctor.facts import PciGpu


def _mixed():
    facts = h100("idle")
    facts.gpus = gpus_fixture("theano-8400gs-titan.json")  # GeForce 8400 GS (PCI 02) + GTX TITAN (PCI 03)
    return facts


def test_unset_is_ok():
    ok = one(h100("idle"), "environment.ok")
    assert ok.title == "CUDA_VISIBLE_DEVICES unset: all 1 GPU(s) visible"


def test_empty_hides_every_gpu():
    facts = h100("idle")
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = ""
    f = one(facts, "environment.cuda-visible-devices-empty")
    assert f.severity is Severity.WARNING
    assert f.fix.startswith("unset CUDA_VISIBLE_DEVICES")
    assert "environment.cuda-visible-devices-invalid" not in codes(facts)


def test_empty_under_root_without_nvml():
    facts = no_gpu_facts()
    facts.driver.pci_gpus = [PciGpu("0000:01:00.0", "0x10de", "0x2684", "0x030000", "nvidia")]
    facts.driver.nvidia_module_loaded = True
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = ""
    assert one(facts, "environment.cuda-visible-devices-empty").severity is Severity.WARNING


def test_index_past_the_end_drops_it_and_the_rest():
    facts = h100("idle")
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "1,0"
    f = one(facts, "environment.cuda-visible-devices-invalid")
    assert f.severity is Severity.ERROR  # nothing visible at all
    assert any("'1'" in e and "every entry after it (0)" in e for e in f.evidence)
    assert f.fix.startswith('eval "$(envdoctor env --gpus 0)"')


def test_partly_valid_list_is_a_warning():
    facts = h100("idle")
    facts.gpus = gpus_fixture("v100-busy.json")
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "0,2,7,1"
    f = one(facts, "environment.cuda-visible-devices-invalid")
    assert f.severity is Severity.WARNING
    assert "CUDA ordinal 1 = nvidia-smi GPU 2 (Tesla V100-SXM2-16GB)" in f.evidence
    assert f.fix.startswith('eval "$(envdoctor env --gpus 0,2)"')


def test_mixed_models_without_pci_bus_order():
    facts = _mixed()
    f = one(facts, "environment.cuda-device-order")
    assert f.severity is Severity.WARNING
    assert "CUDA_DEVICE_ORDER: unset (FASTEST_FIRST)" in f.evidence
    # the TITAN (3.5, nvidia-smi 1) comes first under FASTEST_FIRST
    assert "CUDA ordinal 0 = nvidia-smi GPU 1 (GeForce GTX TITAN)" in f.evidence
    assert f.fix.startswith("export CUDA_DEVICE_ORDER=PCI_BUS_ID")
    facts.env.variables["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    assert "environment.cuda-device-order" not in codes(facts)


def test_identical_gpus_need_no_device_order():
    facts = h100("idle")
    facts.gpus = gpus_fixture("v100-busy.json")
    assert "environment.cuda-device-order" not in codes(facts)


def test_allow_growth_must_be_exactly_true_or_false():
    facts = h100("idle")
    for value in ("1", "True", "yes"):
        facts.env.variables["TF_FORCE_GPU_ALLOW_GROWTH"] = value
        f = one(facts, "environment.allow-growth-invalid")
        assert f.fix == "export TF_FORCE_GPU_ALLOW_GROWTH=true"
    facts.env.variables["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    assert "environment.allow-growth-invalid" not in codes(facts)
    assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in one(facts, "environment.ok").evidence


def test_onednn_opts_value():
    facts = no_gpu_facts()
    facts.env.variables["TF_ENABLE_ONEDNN_OPTS"] = "on"
    assert one(facts, "environment.onednn-opts-invalid").severity is Severity.WARNING
    facts.env.variables["TF_ENABLE_ONEDNN_OPTS"] = "FALSE"  # ReadBoolFromEnvVar lower-cases
    assert "environment.onednn-opts-invalid" not in codes(facts)


def test_mig_layout_is_explained_not_blamed():
    facts = h100("idle")
    facts.gpus = gpus_fixture("a100-mig.json")  # two whole A100s and two MIG-enabled ones
    f = one(facts, "environment.gpu-visibility")
    assert f.severity is Severity.INFO
    assert any(e.startswith("CUDA ordinal 2 = nvidia-smi GPU 2 (NVIDIA A100-PCIE-40GB, MIG MIG-") for e in f.evidence)
    assert "environment.ok" in codes(facts)


def test_minus_one_is_cpu_only_on_purpose_not_an_error():
    facts = h100()
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "-1"  # what `envdoctor env --gpus none` emits
    from envdoctor.checks import run_checks

    problems = [f for f in run_checks(facts) if f.category == "environment" and f.severity.rank >= 2]
    assert not problems
    assert one(facts, "environment.cuda-visible-devices-cpu-only").severity is Severity.INFO


def _fix_spec(fix: str) -> str:
    """The SPEC of the `eval "$(envdoctor env --gpus SPEC)"` line of a fix."""
    import shlex

    line = next(x for x in fix.splitlines() if x.startswith("eval "))
    inner = shlex.split(line)[1]  # $(envdoctor env --gpus SPEC)
    return inner.removeprefix("$(").removesuffix(")").split("--gpus ", 1)[1].split()[0]


def test_invalid_device_order_is_its_own_error():
    # Real driver (tests/fixtures/gpus/h100-cuda-visible.json): CUDA_DEVICE_ORDER=bogus -> cuInit error 101.
    facts = h100("idle")
    facts.env.variables["CUDA_DEVICE_ORDER"] = "bogus"
    f = one(facts, "environment.cuda-device-order-invalid")
    assert f.severity is Severity.ERROR and f.fix.startswith("export CUDA_DEVICE_ORDER=PCI_BUS_ID")
    assert "environment.ok" not in codes(facts)
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "0"  # valid: not blamed for what the order does
    assert "environment.cuda-visible-devices-invalid" not in codes(facts)
    one(facts, "environment.cuda-device-order-invalid")
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "0,3"  # invalid on its own: still reported
    assert "entry '3' names no GPU" in one(facts, "environment.cuda-visible-devices-invalid").evidence[0]


def test_invalid_device_order_without_gpu_is_not_reported():
    facts = no_gpu_facts()
    facts.env.variables["CUDA_DEVICE_ORDER"] = "bogus"
    assert "environment.cuda-device-order-invalid" not in codes(facts)


def test_visible_devices_fix_on_mig_machine_names_mig_devices_and_parses():
    from envdoctor.gpus import parse_spec
    from envdoctor.gpus.visible import resolve_visible_devices

    facts = h100("idle")
    facts.gpus = gpus_fixture("a100-mig.json")
    for cvd in ("MIG-ce2e805f,garbage", "0,MIG-4894e267,x", "GPU-956348bc,9"):
        facts.env.variables["CUDA_VISIBLE_DEVICES"] = cvd
        spec = _fix_spec(one(facts, "environment.cuda-visible-devices-invalid").fix)
        chosen = parse_spec(spec, facts.gpus)  # the suggested command itself succeeds ...
        seen = resolve_visible_devices(cvd, facts.gpus, None).devices
        assert [c.uuid for c in chosen.devices] == [d.uuid for d in seen]  # ... and keeps what CUDA used
    assert spec == "MIG-ce2e805f-ce8e-5cf7-8132-176167d87d24"


def test_visible_devices_fix_when_cuda_sees_nothing_offers_a_selectable_device():
    from envdoctor.gpus import parse_spec

    facts = h100("idle")
    facts.gpus = [g for g in gpus_fixture("a100-mig.json") if g.mig_enabled]  # GPU 2 and 3 (MIG) only
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "garbage"
    spec = _fix_spec(one(facts, "environment.cuda-visible-devices-invalid").fix)
    assert spec == "MIG-ce2e805f-ce8e-5cf7-8132-176167d87d24" and parse_spec(spec, facts.gpus).devices

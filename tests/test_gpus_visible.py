"""CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER resolution, on GPU lists recorded from real machines.

Fixtures: tests/fixtures/gpus/ (see README.md there for where each came from).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envdoctor.gpus.snapshot import load_gpus
from envdoctor.gpus.visible import PCI_BUS_ID, resolve_visible_devices
from envdoctor.probes.nvidia import parse_nvidia_smi_xml

FIX = Path(__file__).parent / "fixtures" / "gpus"


def gpus(name: str):
    return load_gpus(FIX / f"{name}.json")


def names(res):
    return [g.name for g in res.visible]


def test_unset_shows_every_gpu():
    res = resolve_visible_devices(None, gpus("h100-idle"), None)
    assert [g.uuid for g in res.visible] == ["GPU-c1d61728-05ec-5f50-fc60-c0fc41847924"]
    assert res.problems == [] and not res.hidden_all


def test_empty_hides_all():
    res = resolve_visible_devices("", gpus("h100-idle"), None)
    assert res.visible == [] and res.hidden_all
    assert "empty" in res.problems[0]


def test_fastest_first_puts_higher_compute_capability_first():
    # Theano/libgpuarray#57: nvidia-smi 0 = 8400 GS, 1 = GTX TITAN; CUDA numbered them the other way round.
    g = gpus("theano-8400gs-titan")
    res = resolve_visible_devices("0", g, None)
    assert names(res) == ["GeForce GTX TITAN"]
    assert res.order_exact  # different compute capabilities: the observed rule applies
    assert names(resolve_visible_devices("0", g, PCI_BUS_ID)) == ["GeForce 8400 GS"]


def test_ordinal_of_under_each_order():
    g = gpus("theano-8400gs-titan")
    ff = resolve_visible_devices(None, g, "FASTEST_FIRST")
    assert [ff.ordinal_of(x) for x in g] == [1, 0]
    pci = resolve_visible_devices(None, g, PCI_BUS_ID)
    assert [pci.ordinal_of(x) for x in g] == [0, 1]
    only = resolve_visible_devices("1", g, PCI_BUS_ID)
    assert [only.ordinal_of(x) for x in g] == [None, 0]


def test_same_capability_different_models_is_marked_inexact():
    g = gpus("theano-8400gs-titan")
    g[0].compute_capability = "3.5"  # an equal capability with two models: CUDA's order is unknowable
    assert not resolve_visible_devices(None, g, None).order_exact
    assert resolve_visible_devices(None, g, PCI_BUS_ID).order_exact


def test_invalid_entry_truncates_the_list():
    g = gpus("v100-busy")
    res = resolve_visible_devices("2,7,0", g, PCI_BUS_ID)
    assert [x.index for x in res.visible] == [2]
    assert res.problems == ["entry '7' names no GPU (CUDA sees 3 here): CUDA ignores it and every entry after it (0)"]


def test_order_of_entries_is_cuda_order():
    res = resolve_visible_devices("2,0", gpus("v100-busy"), PCI_BUS_ID)
    assert [(d.ordinal, d.gpu.index) for d in res.devices] == [(0, 2), (1, 0)]


def test_negative_entry_stops():
    res = resolve_visible_devices("0,-1,1", gpus("v100-busy"), PCI_BUS_ID)
    assert [x.index for x in res.visible] == [0]
    assert "'-1'" in res.problems[0]


def test_duplicate_hides_everything():
    res = resolve_visible_devices("0,1,0", gpus("v100-busy"), PCI_BUS_ID)
    assert res.visible == [] and not res.hidden_all
    assert "duplicate" in res.problems[0]


def test_uuid_prefix_and_ambiguity():
    g = gpus("a100-mig")
    assert [x.index for x in resolve_visible_devices("GPU-f124", g, None).visible] == [0]
    # GPU-61a65011… and nothing else starts with GPU-6; GPU-f starts GPU-f124… and GPU-feba….
    res = resolve_visible_devices("GPU-6,GPU-f", g, None)
    assert [x.index for x in res.visible] == [1]
    assert "prefix of 2 UUIDs" in res.problems[0]
    res = resolve_visible_devices("GPU-deadbeef", g, None)
    assert res.visible == [] and "matches no GPU or MIG device UUID" in res.problems[0]
    assert resolve_visible_devices("GPU-", g, None).visible == []


def test_mixing_integers_and_uuids_stops():
    res = resolve_visible_devices("0,GPU-61a65011", gpus("a100-mig"), PCI_BUS_ID)
    assert [x.index for x in res.visible] == [0]
    assert "mixes" in res.problems[0]


def test_leading_digits_are_read():
    res = resolve_visible_devices("1abc", gpus("v100-busy"), PCI_BUS_ID)
    assert [x.index for x in res.visible] == [1]
    assert res.problems == ["entry '1abc' is read as 1"]


def test_trailing_comma_is_harmless():
    res = resolve_visible_devices("0,", gpus("v100-busy"), PCI_BUS_ID)
    assert [x.index for x in res.visible] == [0] and res.problems == []


def test_mig_device_by_uuid():
    res = resolve_visible_devices("MIG-ed3d4e0a", gpus("a100-mig"), None)
    assert [x.index for x in res.visible] == [3]
    assert res.devices[0].mig.uuid == "MIG-ed3d4e0a-516b-5cdf-a202-6239aa536031"


def test_mig_enabled_gpu_exposes_its_first_mig_device():
    res = resolve_visible_devices("GPU-956348bc", gpus("a100-mig"), None)
    assert res.devices[0].mig.uuid.startswith("MIG-ce2e805f")


def test_mig_gpu_without_mig_devices_cannot_run_cuda():
    g = gpus("a100-mig")
    g[2].mig_devices = []
    res = resolve_visible_devices(None, g, PCI_BUS_ID)
    assert [x.index for x in res.visible] == [0, 1, 3]
    assert any("no MIG devices" in p for p in res.problems)
    res = resolve_visible_devices("GPU-956348bc", g, PCI_BUS_ID)
    assert res.visible == [] and "without MIG devices" in res.problems[-1]


def test_several_mig_devices_warn():
    res = resolve_visible_devices("MIG-ce2e805f,MIG-4894e267", gpus("a100-mig"), None)
    assert len(res.devices) == 2
    assert any("only the first MIG device" in p for p in res.problems)


def test_legacy_mig_form_is_reported():
    res = resolve_visible_devices("MIG-GPU-956348bc-d43d-23ed-53d4-857749fa2b67/1/0", gpus("a100-mig"), None)
    assert res.visible == [] and "old MIG-GPU" in res.problems[0]


def test_invalid_device_order_hides_every_gpu():
    # The real driver's cuInit fails with CUDA_ERROR_INVALID_DEVICE (h100-cuda-visible.json, "bogus").
    res = resolve_visible_devices(None, gpus("theano-8400gs-titan"), "bogus")
    assert res.visible == []
    assert "neither FASTEST_FIRST nor PCI_BUS_ID" in res.problems[0]


def test_no_gpus_at_all():
    res = resolve_visible_devices("0", [], None)
    assert res.visible == [] and "names no GPU (CUDA sees 0 here)" in res.problems[0]


@pytest.mark.parametrize("value", ["0", "0,1", " 1 , 0 ", "GPU-f1", "MIG-", "x", ",,", "0,,1", "-0", "+1"])
def test_never_raises(value):
    res = resolve_visible_devices(value, gpus("a100-mig"), None)
    assert isinstance(res.problems, list)


def _real_capture():
    data = json.loads((FIX / "h100-cuda-visible.json").read_text())
    _, facts = parse_nvidia_smi_xml(data["nvidia_smi_q_x"])
    return facts, data["records"]


@pytest.mark.parametrize(
    "record", _real_capture()[1], ids=lambda r: f"{r['cuda_visible_devices']!r}/{r['cuda_device_order']}"
)
def test_agrees_with_the_real_cuda_driver(record):
    """Each CUDA_VISIBLE_DEVICES/CUDA_DEVICE_ORDER value as the real driver enumerated it (H100, 580.159.04)."""
    facts, _ = _real_capture()
    res = resolve_visible_devices(record["cuda_visible_devices"], facts, record["cuda_device_order"])
    cuda_saw = ["GPU-" + u for u in record.get("uuids", [])]  # init_error (no device, invalid device): none
    assert [d.uuid for d in res.devices] == cuda_saw

"""configure_tensorflow: the matching logic on recorded GPUs, and the real tensorflow-cpu of the venv."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envdoctor.errors import EnvironmentProblem
from envdoctor.gpus.snapshot import load_gpus
from envdoctor.tfconfig import match_physical

FIX = Path(__file__).parent / "fixtures" / "gpus"


def details(gpus, order):
    """What tf.config.experimental.get_device_details() returns for each GPU, in TF's (= CUDA's) order."""
    return [
        {"device_name": gpus[i].name, "compute_capability": tuple(map(int, gpus[i].compute_capability.split(".")))}
        for i in order
    ]


def test_match_by_uuid_under_pci_order():
    g = load_gpus(FIX / "theano-8400gs-titan.json")
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert match_physical([g[1].uuid], g, details(g, [0, 1]), env) == [1]
    assert match_physical(None, g, details(g, [0, 1]), env) == [0, 1]


def test_match_under_fastest_first_follows_cuda_order():
    g = load_gpus(FIX / "theano-8400gs-titan.json")
    # CUDA (so TF) lists the TITAN first; nvidia-smi's GPU 0 (8400 GS) is TF's device 1.
    assert match_physical([g[0].uuid], g, details(g, [1, 0]), {}) == [1]


def test_mismatch_is_refused_not_guessed():
    g = load_gpus(FIX / "theano-8400gs-titan.json")
    with pytest.raises(EnvironmentProblem, match="refusing to guess"):
        match_physical([g[0].uuid], g, details(g, [0, 1]), {})  # TF's order contradicts CUDA's rule
    with pytest.raises(EnvironmentProblem, match="TensorFlow sees 1"):
        match_physical(None, g, details(g, [1]), {})


def test_hidden_gpu_is_an_error():
    g = load_gpus(FIX / "theano-8400gs-titan.json")
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}
    with pytest.raises(EnvironmentProblem, match="hidden"):
        match_physical([g[0].uuid], g, details(g, [1]), env)


def test_h100_real_capture():
    g = load_gpus(FIX / "h100-idle.json")
    assert match_physical([g[0].uuid], g, details(g, [0]), {}) == [0]


SCRIPT = textwrap.dedent(
    """
    import logging, os
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import tensorflow as tf
    import envdoctor
    from envdoctor.errors import UsageError

    assert envdoctor.configure_tensorflow("all") == []
    assert envdoctor.configure_tensorflow("none", allow_growth=False) == []
    try:
        envdoctor.configure_tensorflow("0")
    except UsageError as exc:
        print("GPU-SPEC:", exc)
    try:
        envdoctor.configure_tensorflow("auto:x")
    except UsageError as exc:
        print("BAD-SPEC:", exc)
    from envdoctor.gpus.snapshot import load_gpus
    h100 = load_gpus(os.environ["H100_SNAPSHOT"])  # NVML sees a GPU, this tensorflow-cpu does not
    try:
        envdoctor.configure_tensorflow("0", nvml_gpus=h100)
    except RuntimeError as exc:  # a state of the machine: envdoctor.errors.EnvironmentProblem
        print("CPU-TF:", exc)
    try:
        envdoctor.configure_tensorflow("0", memory_limit_mb=10**9, nvml_gpus=h100)
    except UsageError as exc:
        print("CAP:", exc)
    print("ORDER:", os.environ.get("CUDA_DEVICE_ORDER"))
    tf.constant(1.0) + 1  # TensorFlow initialises its devices here
    print("AFTER-INIT:", envdoctor.configure_tensorflow("all"))  # a notebook cell run again: still a no-op here
    """
)


@pytest.mark.slow
def test_real_tensorflow_cpu(tmp_path):
    pytest.importorskip("tensorflow")
    env = {
        "PATH": "/usr/bin:/bin",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "H100_SNAPSHOT": str(FIX / "h100-idle.json"),
    }
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TensorFlow sees no GPU; gpus='all' changes nothing" in out.stderr
    assert "TensorFlow sees no GPU; gpus='none' changes nothing" in out.stderr
    assert "GPU-SPEC: GPU SPEC '0' on a machine with no usable NVIDIA GPU" in out.stdout
    assert "BAD-SPEC: bad 'auto:x'" in out.stdout
    assert "CPU-TF: gpus='0', but TensorFlow sees no GPU (is this a CPU-only TensorFlow?)" in out.stdout
    assert "CAP: --memory-limit 1000000000 MB is more than GPU 0 has (81559 MB in total)" in out.stdout
    assert "ORDER: PCI_BUS_ID" in out.stdout
    assert "AFTER-INIT: []" in out.stdout


class RecordingConfig:
    """Stands in for tf.config where no GPU TensorFlow exists: records the calls configure_tensorflow makes."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail = fail
        self.experimental = self

    def set_visible_devices(self, devices, kind):
        if self.fail:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.calls.append(("visible", tuple(devices), kind))

    def set_memory_growth(self, device, on):
        self.calls.append(("growth", device, on))

    def LogicalDeviceConfiguration(self, memory_limit):
        return ("limit", memory_limit)

    def set_logical_device_configuration(self, device, configs):
        self.calls.append(("logical", device, tuple(configs)))


def test_apply_growth_or_cap():
    from types import SimpleNamespace

    from envdoctor.tfconfig import _apply

    g0, g1 = (SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(2))
    cfg = RecordingConfig()
    _apply(SimpleNamespace(config=cfg), [g0, g1], [g1], True, None)
    assert cfg.calls == [("visible", (g1,), "GPU"), ("growth", g1, True)]
    cfg = RecordingConfig()
    _apply(SimpleNamespace(config=cfg), [g0, g1], [g0, g1], True, 2048)  # the cap wins over growth
    assert cfg.calls[1:] == [("logical", g0, (("limit", 2048),)), ("logical", g1, (("limit", 2048),))]
    with pytest.raises(RuntimeError, match="already initialised"):
        _apply(SimpleNamespace(config=RecordingConfig(fail=True)), [g0], [g0], True, None)


def _fake_tf(gpu, growth: bool):
    """tf with one GPU whose runtime is already initialised with memory growth `growth` (no GPU TF here)."""
    from types import SimpleNamespace

    details = {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)}
    experimental = SimpleNamespace(get_device_details=lambda d: details, get_memory_growth=lambda d: growth)
    config = SimpleNamespace(
        list_physical_devices=lambda kind: [gpu],
        get_visible_devices=lambda kind: [gpu],
        get_logical_device_configuration=lambda d: [],
        experimental=experimental,
    )
    return SimpleNamespace(config=config)


def test_after_initialisation_the_same_settings_pass_and_others_are_refused(monkeypatch):
    from types import SimpleNamespace

    from envdoctor import tfconfig

    gpu = SimpleNamespace(name="/physical_device:GPU:0")
    h100 = load_gpus(FIX / "h100-idle.json")
    monkeypatch.setattr(tfconfig, "_initialised", lambda: True)
    monkeypatch.setattr(tfconfig, "_listed", lambda: True)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", _fake_tf(gpu, growth=True))
    assert tfconfig.configure_tensorflow("0", allow_growth=True, nvml_gpus=h100) == [gpu]  # cell run again
    # CUDA numbered the GPUs when the program listed them: setting the order now would change nothing
    assert "CUDA_DEVICE_ORDER" not in os.environ
    with pytest.raises(RuntimeError, match="already initialised its devices"):
        tfconfig.configure_tensorflow("0", allow_growth=False, nvml_gpus=h100)
    with pytest.raises(RuntimeError, match="already initialised its devices"):
        tfconfig.configure_tensorflow("0", memory_limit_mb=4096, nvml_gpus=h100)

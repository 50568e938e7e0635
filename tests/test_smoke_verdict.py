"""smoke-test judging its own numbers (issue 13): the verdict, contention, calibration trust, --tune's arithmetic and
table, the tune cache the doctor reads, progress lines, --plot. No TensorFlow here: the real runs are in
test_smoke_run.py (marked slow)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor.smoke import contention, report, session, tune, tunecache, verdict

ROOT = Path(__file__).resolve().parents[1]
REAL = {
    "source": "cache x",
    "verified": "sha1 a3053698f1d12433ffb17c2775f1932f376899bc (npm mirror)",
    "synthetic": False,
    "train_images": 50000,
    "test_images": 10000,
}


def _run(**extra: object) -> dict:
    base = {
        "config": {"expect": "cpu", "model": "tutorial", "batch_size": 128},
        "model": {"name": "tutorial"},
        "variable_device": "/job:localhost/replica:0/task:0/device:CPU:0",
        "steps": 390,
        "epochs": 1.0,
        "test_accuracy": 0.57,
        "nan_loss": False,
        "data": REAL,
    }
    return {**base, **extra}


def _judge(**extra: object) -> dict:
    return session.judge(_run(**extra), session.SmokeOptions(steps=extra.get("steps", 390)))


# ---------------------------------------------------------------- learning against the reference curve


def test_two_steps_at_chance_on_real_cifar10_is_not_ok() -> None:
    result = _judge(steps=2, epochs=2 * 128 / 50000, test_accuracy=0.1005)
    assert result["verdict"] == "inconclusive" and not result["ok"] and not result["failed"]
    text = report.human(report.summarize(result))
    assert "OK" not in text.splitlines()[-1] and text.splitlines()[-1].startswith("INCONCLUSIVE")
    assert "too short to tell whether it learns" in text and "--epochs" in text


def test_a_run_that_learns_like_the_reference_passes_even_when_slow() -> None:
    # A slow (or loaded) machine trains fewer epochs: it is judged against the curve at its own epochs.
    slow = _judge(steps=120, epochs=0.31, test_accuracy=0.45)
    assert slow["verdict"] == "ok", slow["reasons"]
    learning = next(r for r in slow["reasons"] if r["aspect"] == "learning")
    assert learning["status"] == "ok" and "the reference curve reaches" in learning["text"]


def test_a_run_that_did_not_learn_fails_with_the_expected_accuracy() -> None:
    result = _judge(epochs=1.0, test_accuracy=0.21)
    assert result["failed"] and result["verdict"] == "failed"
    learning = next(r for r in result["reasons"] if r["aspect"] == "learning")
    assert "did not learn as it should: 21.0% test accuracy after 1.00 epochs" in learning["text"]
    assert "FAILED: did not learn as it should" in report.human(report.summarize(result))


def test_changed_options_turn_a_miss_into_a_warning() -> None:
    result = _judge(epochs=1.0, test_accuracy=0.3, config={"expect": "cpu", "model": "tutorial", "batch_size": 1024})
    learning = next(r for r in result["reasons"] if r["aspect"] == "learning")
    assert learning["status"] == "warn" and "--batch-size 1024" in learning["text"] and not result["failed"]


def test_other_data_is_judged_against_chance_only() -> None:
    small = {**REAL, "train_images": 500, "test_images": 100, "verified": None}
    assert _judge(data=small, test_accuracy=0.6)["verdict"] == "ok"
    assert _judge(data=small, test_accuracy=0.12)["verdict"] == "inconclusive"
    synthetic = _judge(data={**small, "synthetic": True}, test_accuracy=0.1)
    assert synthetic["verdict"] == "inconclusive" and "synthetic" in synthetic["reasons"][0]["text"]


def test_reference_curve_is_sourced_monotone_and_interpolated() -> None:
    curves = verdict.reference()["learning_curves"]
    for model, curve in curves.items():
        points = sorted((p["epochs"], p["test_accuracy"]) for p in curve["points"])
        assert all(a0 <= a1 for (_e0, a0), (_e1, a1) in zip(points, points[1:], strict=False)), model
        assert all(p.get("source") for p in curve["points"]) and curve["measured_on"] and curve["batch_size"] == 128
    first = sorted(curves["tutorial"]["points"], key=lambda p: p["epochs"])[:2]
    middle = verdict.reference_accuracy("tutorial", (first[0]["epochs"] * first[1]["epochs"]) ** 0.5)
    assert middle == pytest.approx((first[0]["test_accuracy"] + first[1]["test_accuracy"]) / 2)  # linear in log
    assert verdict.reference_accuracy("tutorial", 1e-6) == pytest.approx(0.1, abs=1e-3)  # chance at no training
    rows = verdict.reference()["speed_rows"]
    assert all(r["system"] and r["software"] and r["when"] and r["source"] for r in rows)


# ---------------------------------------------------------------- speed, calibration, contention


def test_utilization_against_calibration_and_peak_and_a_low_calibration_is_flagged() -> None:
    result = _judge(
        images_per_sec=500.0,
        model={"name": "tutorial", "train_flops_per_image": 100_000_000},
        calibration_gflops=60.0,
        calibration_dtype="float32",
        runtime={"onednn": False},
        devices={"cpu_peak_gflops": 156.0, "gpus": []},
    )
    summary = report.summarize(result)
    assert summary["utilization"] == pytest.approx(50 / 60)
    assert summary["utilization_of_peak"] == pytest.approx(50 / 156)
    low = [r for r in result["reasons"] if r["aspect"] == "calibration"]
    assert low and "only 38% of this CPU's float32 peak estimate (156 GFLOP/s)" in low[0]["text"]
    assert "TF_ENABLE_ONEDNN_OPTS=1" in low[0]["text"] and result["verdict"] == "warnings" and result["ok"]


def test_an_unsettled_or_drifting_calibration_makes_numbers_unreliable() -> None:
    calibration = {"gflops": 100.0, "spread": 0.2, "stable": False, "samples": 9, "size": 2048, "dtype": "float32"}
    result = _judge(calibration=calibration, calibration_after={"gflops": 60.0})
    texts = [r["text"] for r in result["reasons"] if r["status"] == "unreliable"]
    assert any("did not settle" in t for t in texts) and any("moved -40%" in t for t in texts)
    assert result["verdict"] == "unreliable" and result["ok"] and not result["failed"]


def test_a_faster_reading_after_training_is_the_yardstick_and_only_a_slower_one_doubts_the_run() -> None:
    """The stock default run of 03:53 UTC (bench/README.md): 111 GFLOP/s before training, 132 after, nothing else
    on the machine; stock TensorFlow's Eigen matmuls wander between steady modes on that VM."""
    from envdoctor.smoke import train

    before = {"gflops": 111.0, "spread": 0.044, "stable": True, "samples": 20, "size": 2048, "dtype": "float32"}
    after = {**before, "gflops": 131.6, "spread": 0.03}
    assert train.yardstick(before, after) == 131.6
    assert train.yardstick(before, {**after, "stable": False}) == 111.0  # an unsettled reading is no yardstick
    assert train.yardstick(before, {**after, "gflops": 90.0}) == 111.0
    faster = _judge(calibration=before, calibration_after=after)
    (reason,) = [r for r in faster["reasons"] if r["aspect"] == "calibration"]
    assert (
        reason["status"] == "warn" and "moved +19%" in reason["text"] and "against the faster reading" in reason["text"]
    )
    slower = _judge(calibration=before, calibration_after={**after, "gflops": 90.0})
    assert [r["status"] for r in slower["reasons"] if r["aspect"] == "calibration"] == ["unreliable"]
    assert slower["verdict"] == "unreliable"


def test_oneDNN_off_on_a_cpu_cites_the_measured_gain_or_how_to_measure_it() -> None:
    """The issue's complaint: a stock run printed "oneDNN off" and said nothing, while turning it on was 1.6-1.8x
    here. With the --tune cache's figure (the 03:37 UTC tune on the 2-core AVX2 VM: 1.97x) it is a warning with
    the line to paste; without one, a pointer to --tune; with a gain too small to matter, it says so."""
    base = {"runtime": {"onednn": False}, "variable_device": "/job:localhost/replica:0/task:0/device:CPU:0"}
    unmeasured = [r for r in _judge(**base)["reasons"] if "oneDNN is off" in r["text"]]
    assert [r["status"] for r in unmeasured] == ["ok"] and "smoke-test --tune` measures" in unmeasured[0]["text"]
    tune = {"onednn_ratio": 1.97, "onednn_versus": "off", "measured_at": "2026-12-07 03:37 UTC", "unreliable": False}
    result = _judge(**base, tune=tune)
    (reason,) = [r for r in result["reasons"] if "oneDNN is off" in r["text"]]
    assert reason["status"] == "warn" and result["verdict"] == "warnings"
    assert "measured 1.97x" in reason["text"] and reason["text"].endswith("export TF_ENABLE_ONEDNN_OPTS=1")
    small = _judge(**base, tune={**tune, "onednn_ratio": 1.05})
    assert any("no gain worth changing it for" in r["text"] and r["status"] == "ok" for r in small["reasons"])
    on = _judge(runtime={"onednn": True}, tune=tune)
    assert not any("oneDNN is off" in r["text"] for r in on["reasons"])


def _fake_proc(root: Path, busy: int, steal: int, procs: dict[int, tuple[str, int, int]], start: int = 0) -> Path:
    """A /proc with a `stat` line (clock ticks) and one <pid>/stat per process: (name, ticks, ppid), each
    started `start` ticks after boot (field 22, as in proc(5))."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  {busy} 0 0 100000 0 0 0 {steal} 0 0\ncpu0 1 2 3\n")
    for pid, (name, ticks, ppid) in procs.items():
        (root / str(pid)).mkdir(exist_ok=True)
        (root / str(pid) / "stat").write_text(
            f"{pid} ({name}) S {ppid} 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} 0"
        )
    return root


def test_contention_names_the_competing_processes_and_excludes_our_own_tree(tmp_path: Path) -> None:
    me, child, other = os.getpid(), 900001, 900002
    tick = os.sysconf("SC_CLK_TCK")
    first = contention.snapshot(
        _fake_proc(tmp_path / "a", 0, 0, {me: ("python", 0, 1), child: ("python", 0, me), other: ("stress (x)", 0, 1)})
    )
    last = contention.snapshot(
        _fake_proc(
            tmp_path / "b",
            19 * tick,
            0,
            {me: ("python", 1 * tick, 1), child: ("python", 10 * tick, me), other: ("stress (x)", 6 * tick, 1)},
        )
    )
    last.at = first.at + 10.0  # 10 s on 2 CPUs: 20 CPU seconds of capacity
    window = contention.between(first, last, me=me, cpus=2)
    assert window.own_cpu == pytest.approx(11) and window.others_cpu == pytest.approx(8)  # 6 named + 2 unseen
    assert window.invisible_cpu == pytest.approx(2) and window.others_share == pytest.approx(0.4)
    (why,) = window.reasons()
    assert "other processes used 40% of the machine's CPU time" in why and f"pid {other}" in why
    assert "2 CPU s by processes not visible from here" in why


def test_a_kernel_thread_that_renames_itself_is_the_same_process(tmp_path: Path) -> None:
    """Seen on this project's quiet 2-core VM (bench/README.md, 2026-12-07 03:37): a kworker's name carries the
    work queue it serves ("kworker/u8:2-writeback", then "kworker/u8:2-events_unbound"); taken for a new process,
    its whole lifetime (1.7 CPU s) counted in every 20 s tune leg and marked quiet legs UNRELIABLE."""
    me, worker, tick = os.getpid(), 900038, os.sysconf("SC_CLK_TCK")
    before = {me: ("python", 0, 1), worker: ("kworker/u8:2-writeback", 170, 2)}
    after = {me: ("python", 20 * tick, 1), worker: ("kworker/u8:2-events_unbound", 171, 2)}
    first = contention.snapshot(_fake_proc(tmp_path / "a", 0, 0, before, start=5))
    last = contention.snapshot(_fake_proc(tmp_path / "b", 20 * tick + 1, 0, after, start=5))
    last.at = first.at + 10.0
    window = contention.between(first, last, me=me, cpus=2)
    assert window.others_cpu == pytest.approx(1 / tick) and window.reasons() == []
    # the same pid, started later: another process, all of whose CPU time falls in the window
    reused = contention.snapshot(
        _fake_proc(tmp_path / "c", 26 * tick, 0, {**after, worker: ("stress", 6 * tick, 1)}, 9)
    )
    reused.at = first.at + 10.0
    window = contention.between(first, reused, me=me, cpus=2)
    assert window.others_cpu == pytest.approx(6) and "stress (pid 900038, 6.0 CPU s)" in window.reasons()[0]


def test_a_quiet_window_and_steal(tmp_path: Path) -> None:
    me, tick = os.getpid(), os.sysconf("SC_CLK_TCK")
    first = contention.snapshot(_fake_proc(tmp_path / "a", 0, 0, {me: ("python", 0, 1)}))
    last = contention.snapshot(_fake_proc(tmp_path / "b", 10 * tick, 3 * tick, {me: ("python", 10 * tick, 1)}))
    last.at = first.at + 10.0
    window = contention.between(first, last, me=me, cpus=2)
    assert window.others_share == 0 and window.steal_share == pytest.approx(0.15)
    assert window.reasons() == ["the hypervisor gave 15% of this VM's CPU time to other guests (steal)"]


def test_contention_in_the_result_marks_the_numbers_unreliable() -> None:
    window = {
        "reasons": ["other processes used 40% of the machine's CPU time while it ran (stress (pid 9))"],
        "unreliable": True,
        "others_share": 0.4,
        "steal_share": 0.0,
        "load_max": 3.1,
        "cpus": 2,
    }
    result = _judge(contention=window)
    assert result["verdict"] == "unreliable" and result["ok"]
    text = report.human(report.summarize(result))
    assert "machine:     UNRELIABLE: others used 40% of the CPU time" in text
    assert "numbers unreliable: other processes used 40%" in text and "stress (pid 9)" in text
    assert text.splitlines()[-1].startswith("OK, BUT THE NUMBERS ARE UNRELIABLE")


# ---------------------------------------------------------------- --tune


def _leg(setting: str, round_: int, rate: float | None, error: str | None = None) -> tune.Leg:
    return tune.Leg(setting, round_, images_per_sec=rate, error=error, utilization=0.8 if rate else None)


def test_tune_settings_follow_the_machine() -> None:
    avx2 = [s.name for s in tune.settings_for({"avx2", "fma"}, 2, None)]
    assert avx2[0] == "stock" and avx2[1] == "oneDNN on" and not any("bfloat16" in s for s in avx2)
    bf16 = [s.name for s in tune.settings_for({"avx512_bf16", "avx512_vnni"}, 8, None)]
    assert bf16[1] == "oneDNN off" and "oneDNN on + mixed_bfloat16" in bf16  # default on: the leg turns it off
    gpu = [s.name for s in tune.settings_for(set(), 16, (9, 0))]
    assert gpu == ["stock", "XLA jit_compile", "mixed_float16", "mixed_float16 + XLA"]
    assert "mixed_float16" not in [s.name for s in tune.settings_for(set(), 16, (6, 1))]  # no tensor cores


def test_tune_interleaves_rotates_and_survives_a_crash_and_ctrl_c() -> None:
    settings = [tune.Setting("stock"), tune.Setting("a"), tune.Setting("b")]
    order: list[tuple[str, int]] = []

    def run_leg(setting: tune.Setting, round_: int) -> tune.Leg:
        order.append((setting.name, round_))
        if setting.name == "b":
            return _leg("b", round_, None, "train: InvalidArgumentError: no such kernel")
        return _leg(setting.name, round_, {"stock": 100.0, "a": 150.0}[setting.name] + round_)

    legs, interrupted = tune.tune(settings, run_leg, rounds=2)
    assert not interrupted and order == [("stock", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("stock", 1)]
    summary = tune.summarize(settings, legs)
    best = summary["best"]
    assert best["setting"] == "a" and best["ratio"] == pytest.approx((150 / 100 + 151 / 101) / 2)
    text = "\n".join(tune.report_lines(summary, False, None))
    assert "crashed: train: InvalidArgumentError: no such kernel" in text and "best: a: 1.50x" in text

    def interrupted_leg(setting: tune.Setting, round_: int) -> tune.Leg:
        if len(order) == 8:
            raise KeyboardInterrupt
        return run_leg(setting, round_)

    legs, interrupted = tune.tune(settings, interrupted_leg, rounds=2)
    assert interrupted and len(legs) == 2
    assert "INTERRUPTED (Ctrl-C): the table holds the legs measured so far." in tune.report_lines(
        tune.summarize(settings, legs), True, None
    )


def test_a_leg_on_a_shared_machine_does_not_pick_the_winner() -> None:
    """The legs of the 03:40 UTC tune on the 2-core AVX2 VM (bench/README.md): the hypervisor took 11% of the CPU
    during oneDNN's first leg (747 images/s, then 1038 on a machine of its own), and the median of both rounds
    crowned the thread-pinned setting instead. Only rounds measured on a quiet machine decide a ratio."""
    stolen = {"unreliable": True, "reasons": ["the hypervisor gave 11% of this VM's CPU time to other guests"]}
    names = ["stock", "oneDNN on", "oneDNN on + 2 intra-op threads, 1 inter-op"]
    settings = [tune.Setting(name) for name in names]
    measured = {
        ("stock", 0): 576,
        ("oneDNN on", 0): 747,
        ("oneDNN on + 2 intra-op threads, 1 inter-op", 0): 930,
        ("oneDNN on", 1): 1038,
        ("oneDNN on + 2 intra-op threads, 1 inter-op", 1): 987,
        ("stock", 1): 576,
    }
    legs = [_leg(name, r, rate) for (name, r), rate in measured.items()]
    legs[1].contention = stolen
    summary = tune.summarize(settings, legs)
    best = summary["best"]
    assert best["setting"] == "oneDNN on" and best["ratio"] == pytest.approx(1038 / 576) and not best["unreliable"]
    text = "\n".join(tune.report_lines(summary, False, None))
    assert "747* 1038" in text and "(median of 1 round," in text and "decide no ratio" in text
    assert "UNRELIABLE" not in text  # every setting kept a round of its own
    for leg in legs:  # every round shared: the ratios are all there is, and the table says so
        leg.contention = stolen
    assert "UNRELIABLE: machine shared" in "\n".join(tune.report_lines(tune.summarize(settings, legs), False, None))


def test_tune_paste_lines_are_shell_and_python() -> None:
    row = {
        "setting": "oneDNN on + 2 intra-op threads, 1 inter-op",
        "env": {"TF_ENABLE_ONEDNN_OPTS": "1", "OMP_NUM_THREADS": "2"},
        "config": {"intra_op_threads": 2, "inter_op_threads": 1},
    }
    assert tune.paste_lines(row) == [
        "export TF_ENABLE_ONEDNN_OPTS=1",
        "export OMP_NUM_THREADS=2",
        "# in Python, before TensorFlow runs its first op:",
        "tf.config.threading.set_intra_op_parallelism_threads(2)",
        "tf.config.threading.set_inter_op_parallelism_threads(1)",
    ]


def test_the_tune_cache_gives_the_doctor_a_measured_onednn_gain(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENVDOCTOR_CACHE_DIR", str(tmp_path))
    settings = tune.settings_for({"avx2"}, 2, None)[:2]
    legs = [_leg("stock", 0, 600.0), _leg("oneDNN on", 0, 990.0), _leg("oneDNN on", 1, 1000.0), _leg("stock", 1, 610.0)]
    summary = tune.summarize(settings, legs)
    facts = {"cpu_model": "AMD EPYC", "tf_version": "2.21.0"}
    assert tunecache.save(tune.to_cache(summary, legs, facts, 2)) == tunecache.tune_path("AMD EPYC", "2.21.0")
    note = tunecache.onednn_note("AMD EPYC", "2.21.0")
    assert note.startswith("# measured by `envdoctor smoke-test --tune` on this CPU model") and "1.65x" in note
    assert tunecache.onednn_note("AMD EPYC", "2.20.0") is None  # another TensorFlow: nothing to cite
    # The tune probe reads it on the live machine only (never under --root); the doctor's cpu.onednn-off fix cites it
    from envdoctor.checks.cpu import _onednn
    from envdoctor.facts import Facts
    from envdoctor.probes import ProbeContext
    from envdoctor.probes import tune as tune_probe

    facts = Facts()
    facts.cpu.model, facts.tensorflow.version, facts.system.os = "AMD EPYC", "2.21.0", "Linux"
    tune_probe.probe(ProbeContext(env={}), facts)
    (finding,) = _onednn(facts, {"avx2", "fma"})
    assert finding.code == "cpu.onednn-off" and finding.fix == "export TF_ENABLE_ONEDNN_OPTS=1\n" + note
    under_root = Facts(cpu=facts.cpu, tensorflow=facts.tensorflow, system=facts.system, root="/mnt/image", host=False)
    tune_probe.probe(ProbeContext(root=tmp_path, env={}), under_root)
    assert under_root.tune is None
    assert _onednn(under_root, {"avx2", "fma"})[0].fix.endswith("# optional: often faster on the CPU")
    # and a smoke-test run on this CPU and TensorFlow with oneDNN off carries it to its verdict
    run = {"devices": {"cpu_model": "AMD EPYC", "gpus": []}, "runtime": {"onednn": False, "tf_version": "2.21.0"}}
    session.add_tune_facts(run)
    assert run["tune"]["onednn_ratio"] == pytest.approx(1.65, abs=0.01) and run["tune"]["onednn_versus"] == "off"
    for other in ({"onednn": True, "tf_version": "2.21.0"}, {"onednn": False, "tf_version": "2.20.0"}):
        unmeasured = {**run, "runtime": other}
        unmeasured.pop("tune")
        session.add_tune_facts(unmeasured)
        assert "tune" not in unmeasured


# ---------------------------------------------------------------- progress, plot, CLI


def test_plain_progress_says_phase_time_and_evaluation_progress() -> None:
    out = io.StringIO()
    with report.Progress(out, interactive=False) as progress:
        progress("train", {"event": "phase", "phase": "train", "budget_seconds": 50.0, "global_batch": 128})
        progress(
            "train",
            {
                "event": "step",
                "step": 20,
                "loss": 2.0,
                "images_per_sec": 900.0,
                "sec_per_batch": 0.14,
                "elapsed": 12.0,
                "progress": 0.24,
            },
        )
        progress("train", {"event": "phase", "phase": "evaluate", "images": 10000})
        progress("train", {"event": "eval_progress", "done": 10000, "total": 10000, "elapsed": 4.0})
    text = out.getvalue()
    assert "train: 50 s budget, 128 images per step" in text and "[12 s of training, ~38 s left]" in text
    assert "evaluate: 10000 test images" in text and "evaluate: 10000/10000 test images, 4 s" in text
    assert "\x1b" not in text and "\r" not in text  # off a terminal: plain lines


def test_plot_draws_png_and_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from envdoctor.smoke import plot

    history = [
        {
            "step": 10 * i,
            "epoch": 0.025 * i,
            "elapsed": 2.0 * i,
            "loss": 4 - 0.1 * i,
            "train_accuracy": 0.1 + 0.03 * i,
            "images_per_sec": 600.0 + i,
            "lr": 0.01,
        }
        for i in range(1, 20)
    ]
    summary = {
        "history": history,
        "curve": [{"epoch": 0.25, "elapsed": 20.0, "test_accuracy": 0.4}],
        "model": {"name": "tutorial"},
        "device": "CPU",
        "verdict": "ok",
        "test_accuracy": 0.47,
        "epochs": 0.475,
        "train_seconds": 38.0,
        "images_per_sec": 610.0,
    }
    for name in ("curve.png", "curve.svg"):
        path = plot.draw(summary, str(tmp_path / name))
        assert path.stat().st_size > 10_000
    assert (tmp_path / "curve.svg").read_text().lstrip().startswith("<?xml")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--plot", "curve.jpg"], "write a .png or .svg file"),
        (["--tune", "--strategy", "mirrored"], "--tune times one process on one device"),
        (["--tune", "--tune-rounds", "0"], "--tune-rounds must be 1-20"),
    ],
)
def test_cli_refuses_bad_tune_and_plot_options_in_one_line(args: list[str], message: str) -> None:
    out = _cli("smoke-test", *args)
    assert out.returncode == 2 and out.stdout == "" and message in out.stderr and len(out.stderr.splitlines()) == 1


def test_check_imports_none_of_the_smoke_tests_heavy_modules() -> None:
    # Each module of envdoctor.smoke.data imports the package first: the package stands for all of them.
    heavy = "('matplotlib', 'tensorflow', 'numpy', 'envdoctor.smoke.data')"
    code = (
        f"import sys, envdoctor.cli, envdoctor.smoke.tunecache; print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_downloads_show_size_speed_and_time_left() -> None:
    from envdoctor.smoke import data

    lines: list[str] = []
    meter = data.DownloadMeter(lines.append, every=0.0)
    meter.started -= 2.0  # two seconds in
    meter(20_000_000, 140_000_000)
    meter(140_000_000, 140_000_000, done=True)
    assert lines[0].startswith("downloading: 20.0 of 140.0 MB, ") and lines[0].endswith(" s left")
    assert lines[1].startswith("downloaded: 140.0 of 140.0 MB, ") and "left" not in lines[1]

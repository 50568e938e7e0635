"""The smoke-test run, parent side: data, GPU environment, child processes, their events, the verdict.

The parent never imports TensorFlow. Training (and the concurrent evaluator) run as children whose environment
is set before TensorFlow starts: the same SPEC and code as `envdoctor env --gpus SPEC`.
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envdoctor.errors import UsageError
from envdoctor.runner import kill_group
from envdoctor.smoke import child, multiworker
from envdoctor.smoke import data as cifar
from envdoctor.smoke.models import MODELS

DEFAULT_BUDGET = 50.0  # seconds of training by default: ~57 s wall on the 2-core dev machine (bench/README.md)
CHANCE = 0.15  # accuracy at or below this after the default budget means nothing was learned (chance is 0.10)
Event = dict[str, Any]


def require_tensorflow() -> None:
    """The training runs on the TensorFlow of the Python that runs envdoctor: where there is none, one line
    that says which Python and what to do (found without importing anything)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise UsageError(
            f"smoke-test trains with the TensorFlow of the Python that runs envdoctor ({sys.executable}), and it has "
            "none: run envdoctor from the environment that has your TensorFlow (ENV/bin/python -m pip install "
            "envdoctor; ENV/bin/python -m envdoctor smoke-test), or pip install 'envdoctor[tf]' here")


@dataclass
class SmokeOptions:
    model: str = "tutorial"
    steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None
    batch_size: int = 128
    data: str | None = None
    gpus: str | None = None  # SPEC; None: auto:1 with GPUs (all for mirrored), none without
    precision: str = "auto"
    strategy: str = "default"
    workers: str | None = None
    worker_index: int | None = None
    eval_concurrent: bool = False
    offline: bool = False
    learning_rate: float | None = None
    seed: int = 0
    timeout: float | None = None

    def validate(self) -> None:
        require_tensorflow()
        if self.model not in MODELS:
            raise UsageError(f"unknown --model {self.model!r}: choose {', '.join(MODELS)}")
        if self.precision not in ("auto", "fp32", "mixed"):
            raise UsageError(f"unknown --precision {self.precision!r}: choose auto, fp32 or mixed")
        if self.strategy not in ("default", "mirrored", "multi-worker"):
            raise UsageError(f"unknown --strategy {self.strategy!r}: choose default, mirrored or multi-worker")
        if sum(v is not None for v in (self.steps, self.epochs, self.time_budget)) > 1:
            raise UsageError("give at most one of --steps, --epochs, --time-budget")
        for name, value in (("--steps", self.steps), ("--epochs", self.epochs), ("--time-budget", self.time_budget),
                            ("--batch-size", self.batch_size), ("--learning-rate", self.learning_rate),
                            ("--timeout", self.timeout)):
            if value is not None and not (math.isfinite(value) and value > 0):  # NaN and inf too
                raise UsageError(f"{name} must be a positive number, not {value}")
        if self.strategy != "multi-worker" and (self.workers is not None or self.worker_index is not None):
            raise UsageError("--workers and --worker-index go with --strategy multi-worker")
        if self.strategy == "multi-worker" and self.steps is None and self.epochs is None:
            raise UsageError("--strategy multi-worker needs --steps or --epochs: "
                             "every worker must stop at the same step")

    @property
    def budget(self) -> float | None:
        if self.steps is None and self.epochs is None:
            return self.time_budget or DEFAULT_BUDGET
        return None


def gpu_environment(spec: str | None, strategy: str) -> tuple[dict[str, str], str, str]:
    """(environment, expected device kind, the SPEC used), through envdoctor.gpus like `envdoctor env`."""
    from envdoctor.gpus import environment_for
    from envdoctor.probes import ProbeContext
    from envdoctor.probes.nvidia import collect_gpus

    _driver, gpus = collect_gpus(ProbeContext())
    if spec is None:
        spec = ("all" if strategy == "mirrored" else "auto:1") if gpus else "none"
    env = environment_for(spec, gpus, allow_growth=True)
    visible = env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    expect = "gpu" if gpus and visible not in ("", "-1") else "cpu"
    return env, expect, spec


def prepare_data(options: SmokeOptions, run_dir: Path, log: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """An .npz the children load in a fraction of a second: the cache itself, or a copy of --data in run_dir.

    The cache is used as it is only when every CRC checks out: a damaged one is refetched (or refused with
    --offline) here, not found out by the training process after TensorFlow started."""
    if options.data == "synthetic":  # said before training too, not only in the final report
        log("NOTE: --data synthetic: random images, not CIFAR-10; the accuracy will say nothing about CIFAR-10")
    cached = cifar.cache_path()
    try:
        if options.data is None and (summary := cifar.peek_cache(cached)) is not None:
            return str(cached), summary
        loaded = cifar.obtain(options.data, offline=options.offline, log=log)
        if options.data is None and cached.is_file():
            return str(cached), loaded.summary()
        note_partial(loaded.summary(), log)
        target = run_dir / "data.npz"
        cifar.write_cache(loaded, target)
    except cifar.DataError as exc:
        raise UsageError(str(exc)) from exc
    return str(target), loaded.summary()


def note_partial(summary: dict[str, Any], log: Callable[[str], None]) -> None:
    """--data may be a partial copy (the cache may not): train on it, but say so before training."""
    counts, full = (summary["train_images"], summary["test_images"]), cifar.expected_counts()
    if counts != full and not summary.get("synthetic"):
        log(f"NOTE: {counts[0]} train + {counts[1]} test images, not the full CIFAR-10 ({full[0]} + {full[1]})")


def check_batch_size(options: SmokeOptions, summary: dict[str, Any]) -> None:
    """A batch larger than the training set cannot be drawn from it: refuse it before TensorFlow starts
    (one such batch of --batch-size 100000000 also needs hundreds of GB)."""
    if options.batch_size > summary["train_images"]:
        raise UsageError(f"--batch-size {options.batch_size} is larger than the {summary['train_images']} "
                         "training images")


def _python() -> str:
    return sys.executable or shutil.which("python3") or "python3"


def _spawn(module: str, config_json: str, run_dir: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    config = run_dir / f"{name}.json"
    config.write_text(config_json)
    child_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", child.PARENT_ENV: str(os.getpid()),
                 # 0 keeps TF's INFO start-up lines (cpu_feature_guard) in the log for add_log_facts
                 "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")}
    # Our own Python child, streamed line by line (runner.run_command only returns output at the end); same rules:
    # no shell, its own session so a timeout, Ctrl-C or SIGTERM kills the whole group (see _signals_raise), and
    # the child dies with us if we are killed outright (child.die_with_parent). Its stderr, TensorFlow's chatter,
    # goes to a log shown only when something fails.
    with open(run_dir / f"{name}.log", "wb") as log:
        return subprocess.Popen([_python(), "-m", module, str(config)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=log, env=child_env, start_new_session=True)


def _pump(proc: subprocess.Popen[bytes], name: str, events: queue.Queue[tuple[str, Event | None]]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            event = {"event": "output", "line": raw.decode("utf-8", "replace").rstrip()}
        events.put((name, event))
    events.put((name, None))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    kill_group(proc, wait=10)


def log_tail(run_dir: Path, name: str, lines: int = 15) -> str:
    try:
        text = (run_dir / f"{name}.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run(options: SmokeOptions, on_event: Callable[[str, Event], None],
        log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run the smoke test; return the result (see report.py) with "ok" and "failures" filled in."""
    options.validate()
    started = time.perf_counter()
    env, expect, spec = gpu_environment(options.gpus, options.strategy)
    if options.strategy == "multi-worker":
        env["TF_CONFIG"] = multiworker.tf_config(multiworker.parse_workers(options.workers), options.worker_index)
    run_dir = _make_run_dir()
    try:
        with _signals_raise():
            data_file, summary = prepare_data(options, run_dir, log)
            check_batch_size(options, summary)
            procs = _start_children(options, data_file, summary, expect, env, run_dir)
            result = _collect(procs, run_dir, options, on_event)
            add_log_facts(result, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    # The parent's data summary: a run whose child died before its result still says where the data came from.
    result.update(data=summary, options=asdict(options), gpu_spec=spec, gpu_environment=env,
                  wall_seconds=time.perf_counter() - started)
    return judge(result, options)


def _make_run_dir() -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix="envdoctor-smoke-"))
    except OSError as exc:  # TMPDIR missing or read-only: one line, as for the cache folder
        raise UsageError(f"cannot create a run folder in {tempfile.gettempdir()}: {exc.strerror or exc} "
                         "(set TMPDIR to a writable folder)") from exc


LOG_HEAD = 1 << 18  # bytes of the training log searched for TensorFlow's start-up lines


def add_log_facts(result: dict[str, Any], run_dir: Path) -> None:
    """The CPU instructions the TensorFlow binary was not built for, from cpu_feature_guard's start-up line in the
    training log, read by `check --deep`'s parser: a stock wheel lists AVX2 FMA...; a -march=native build none.
    None when TensorFlow never started or the line was hidden (it is INFO: TF_CPP_MIN_LOG_LEVEL above 0)."""
    from envdoctor.probes.deep import missing_cpu_instructions

    runtime = result.get("runtime")
    if runtime is None:
        return
    level = (runtime.get("env") or {}).get("TF_CPP_MIN_LOG_LEVEL", "0")
    try:
        with open(run_dir / "train.log", "rb") as handle:
            text = handle.read(LOG_HEAD).decode("utf-8", "replace")
    except OSError:
        text = None
    shown = level.strip() in ("", "0") and text is not None
    runtime["missing_cpu_instructions"] = missing_cpu_instructions(text) if shown else None


def _start_children(options: SmokeOptions, data_file: str, summary: dict[str, Any], expect: str,
                    env: dict[str, str], run_dir: Path) -> dict[str, subprocess.Popen[bytes]]:
    """The training process, and on the chief with --eval-concurrent the evaluator, both with the GPU env."""
    from envdoctor.smoke import evalproc, train

    chief = options.worker_index in (None, 0)
    ckpt_dir = str(run_dir / "checkpoints") if options.eval_concurrent and chief else None
    config = train.RunConfig(
        model=options.model, data_file=data_file, data=summary, steps=options.steps, epochs=options.epochs,
        time_budget=options.budget, batch_size=options.batch_size, precision=options.precision,
        strategy=options.strategy, expect=expect, checkpoint_dir=ckpt_dir, learning_rate=options.learning_rate,
        seed=options.seed)
    procs = {"train": _spawn("envdoctor.smoke.train", config.to_json(), run_dir, "train", env)}
    try:
        if ckpt_dir:
            Path(ckpt_dir).mkdir()
            eval_config = evalproc.EvalConfig(options.model, data_file, ckpt_dir, timeout=_timeout(options))
            procs["eval"] = _spawn("envdoctor.smoke.evalproc", eval_config.to_json(), run_dir, "eval", env)
    except BaseException:
        _kill(procs["train"])
        raise
    return procs


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP (`timeout`, a closed terminal) raise SystemExit like Ctrl-C raises KeyboardInterrupt, so
    the finally blocks that kill the children run: their own sessions would otherwise outlive us."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _timeout(options: SmokeOptions) -> float:
    if options.timeout:
        return options.timeout
    return 2 * options.budget + 300 if options.budget else 4 * 3600.0


EVAL_GRACE = 120.0  # seconds the evaluator may take, once training has ended, for its last checkpoint


def _collect(procs: dict[str, subprocess.Popen[bytes]], run_dir: Path, options: SmokeOptions,
             on_event: Callable[[str, Event], None]) -> dict[str, Any]:
    """Forward every child event to on_event until all children end (or the timeout kills them)."""
    events: queue.Queue[tuple[str, Event | None]] = queue.Queue()
    for name, proc in procs.items():
        threading.Thread(target=_pump, args=(proc, name, events), daemon=True).start()
    result: dict[str, Any] = {}
    evaluations: list[Event] = []
    errors: list[str] = []
    try:
        _pump_events(events, set(procs), options, on_event, result, evaluations, errors)
        for proc in procs.values():  # stdout closed: the process is exiting
            try:
                proc.wait(timeout=0 if errors else 30)
            except subprocess.TimeoutExpired:
                pass
    finally:  # a timeout, Ctrl-C, SIGTERM or any error: no child outlives the command
        stopped = {name for name, proc in procs.items() if proc.poll() is None}  # by us: errors says why
        for proc in procs.values():
            _kill(proc)
    for name, proc in procs.items():
        if name not in stopped and proc.returncode != 0 and not any(e.startswith(name) for e in errors):
            errors.append(f"{name} process exited with {proc.returncode}")
    if errors:
        result["errors"] = errors
        result["log_tail"] = {n: log_tail(run_dir, n) for n in procs}
    if "eval" in procs:
        result["eval_process"] = {
            "ran": bool(evaluations), "returncode": procs["eval"].returncode,
            "during_training": sum(bool(e.get("during_training")) for e in evaluations),
            "evaluations": [{k: e.get(k) for k in ("step", "precision_at_1", "seconds", "during_training")}
                            for e in evaluations]}
    return result


def _pump_events(events: queue.Queue[tuple[str, Event | None]], open_streams: set[str], options: SmokeOptions,
                 on_event: Callable[[str, Event], None], result: dict[str, Any], evaluations: list[Event],
                 errors: list[str]) -> None:
    """Read events until every stream closes or the deadline passes. When training ends, the evaluator gets
    EVAL_GRACE seconds for its last checkpoint, or none if training left no result: it would wait for checkpoints
    that never come (the caller kills it)."""
    limit = _timeout(options)
    deadline = time.monotonic() + limit
    while open_streams:
        try:
            name, event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            errors.append(f"timed out after {limit:.0f}s" if "train" in open_streams else
                          f"eval: still running {EVAL_GRACE:.0f}s after training ended")
            return
        if event is None:
            open_streams.discard(name)
            if name == "train" and open_streams:
                if not result:
                    return
                deadline = min(deadline, time.monotonic() + EVAL_GRACE)
            continue
        kind = event.get("event")
        if kind == "result":
            result.update(event["result"])
        elif kind == "eval":
            evaluations.append(event)
        elif kind == "error":
            errors.append(f"{name}: {event['message']}")
        on_event(name, event)


def judge(result: dict[str, Any], options: SmokeOptions) -> dict[str, Any]:
    """Non-zero exit on: a crash, NaN loss, chance accuracy after the default budget, the wrong device."""
    failures = list(result.get("errors", [])) + device_failures(result, options)
    if result.get("nan_loss"):
        failures.append("the loss became NaN")
    accuracy = result.get("test_accuracy")
    full_budget = options.budget is not None and options.budget >= DEFAULT_BUDGET
    if accuracy is not None and full_budget and accuracy <= CHANCE:
        failures.append(f"test accuracy {accuracy:.1%} is at chance after the default budget")
    evaluator = options.eval_concurrent and options.worker_index in (None, 0)
    if evaluator and not failures and not result.get("eval_process", {}).get("ran"):  # else a consequence
        failures.append("the concurrent evaluator evaluated no checkpoint")
    if not result.get("steps") and not failures:
        failures.append("training ran no step")
    result["failures"] = failures
    result["ok"] = not failures
    return result


def device_failures(result: dict[str, Any], options: SmokeOptions) -> list[str]:
    """Training on another device than asked: the CPU for a GPU, a GPU for --gpus none, fewer GPUs than the
    mirrored run was given."""
    failures = [result["device_mismatch"]] if result.get("device_mismatch") else []
    device = str(result.get("variable_device") or "")
    expect = result.get("config", {}).get("expect")
    if expect == "gpu" and device and "GPU" not in device.upper():
        failures.append(f"asked for a GPU but training ran on {device}")
    if expect == "cpu" and "GPU" in device.upper():
        failures.append(f"asked for the CPU (--gpus none) but training ran on {device}")
    visible = str((result.get("gpu_environment") or {}).get("CUDA_VISIBLE_DEVICES") or "")
    given = len([v for v in visible.split(",") if v.strip() not in ("", "-1")])
    replicas = (result.get("strategy") or {}).get("replicas")
    if options.strategy == "mirrored" and expect == "gpu" and replicas and given > replicas:
        failures.append(f"the mirrored run was given {given} GPUs (CUDA_VISIBLE_DEVICES={visible}) but trained on "
                        f"{replicas}")
    return failures

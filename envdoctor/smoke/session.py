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
from typing import TYPE_CHECKING, Any

from envdoctor.errors import UsageError
from envdoctor.runner import kill_group
from envdoctor.smoke import child, contention, multiworker, report, verdict
from envdoctor.smoke import data as cifar
from envdoctor.smoke.models import MODELS

if TYPE_CHECKING:
    from envdoctor.gpus.spec import Selection

DEFAULT_BUDGET = 50.0  # seconds of training by default: ~57 s wall on the 2-core dev machine (bench/README.md)
CHANCE = 0.15  # accuracy at or below this after the default budget means nothing was learned (chance is 0.10)
Event = dict[str, Any]


def require_tensorflow() -> None:
    """The training runs on the TensorFlow of the Python that runs envdoctor: where there is none, one line
    that says which Python and what to do (found without importing anything). A state of the machine: exit 1."""
    import importlib.util

    from envdoctor.errors import EnvironmentProblem

    if importlib.util.find_spec("tensorflow") is None:
        raise EnvironmentProblem(
            f"smoke-test trains with the TensorFlow of the Python that runs envdoctor ({sys.executable}), and it has "
            f"none: run envdoctor from the environment that has your TensorFlow (ENV/bin/python -m pip install "
            f"{install_source()}; ENV/bin/python -m envdoctor smoke-test), or install TensorFlow here (`envdoctor "
            "check` prints the command for this Python)"
        )


def install_source() -> str:
    """What `pip install` takes to install this envdoctor elsewhere: the checkout it runs from (envdoctor is not on
    the package index, so `pip install envdoctor` would not work), else its name."""
    import shlex

    checkout = Path(__file__).resolve().parents[2]
    return shlex.quote(str(checkout)) if (checkout / "pyproject.toml").is_file() else "envdoctor"


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
    tune: bool = False  # --tune: time the runtime settings instead of one run
    tune_rounds: int = 2
    plot: str | None = None  # --plot FILE (.png or .svg)
    logdir: str | None = None  # --logdir DIR: TensorBoard event files

    def validate(self) -> None:
        require_tensorflow()
        self._validate_extras()
        if self.model not in MODELS:
            raise UsageError(f"unknown --model {self.model!r}: choose {', '.join(MODELS)}")
        if self.precision not in ("auto", "fp32", "mixed"):
            raise UsageError(f"unknown --precision {self.precision!r}: choose auto, fp32 or mixed")
        if self.strategy not in ("default", "mirrored", "multi-worker"):
            raise UsageError(f"unknown --strategy {self.strategy!r}: choose default, mirrored or multi-worker")
        if sum(v is not None for v in (self.steps, self.epochs, self.time_budget)) > 1:
            raise UsageError("give at most one of --steps, --epochs, --time-budget")
        for name, value in (
            ("--steps", self.steps),
            ("--epochs", self.epochs),
            ("--time-budget", self.time_budget),
            ("--batch-size", self.batch_size),
            ("--learning-rate", self.learning_rate),
            ("--timeout", self.timeout),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):  # NaN and inf too
                raise UsageError(f"{name} must be a positive number, not {value}")
        if self.strategy != "multi-worker" and (self.workers is not None or self.worker_index is not None):
            raise UsageError("--workers and --worker-index go with --strategy multi-worker")
        if self.strategy == "multi-worker" and self.steps is None and self.epochs is None:
            raise UsageError(
                "--strategy multi-worker needs --steps or --epochs: every worker must stop at the same step"
            )

    def _validate_extras(self) -> None:
        """--tune, --plot and --logdir, refused before TensorFlow starts when they cannot work."""
        if self.tune and (self.strategy != "default" or self.eval_concurrent):
            raise UsageError("--tune times one process on one device: leave out --strategy and --eval-concurrent")
        if self.tune and not 1 <= self.tune_rounds <= 20:
            raise UsageError(f"--tune-rounds must be 1-20, not {self.tune_rounds}")
        if self.plot is not None:
            from envdoctor.smoke.plot import check_plot_target

            check_plot_target(self.plot)

    @property
    def budget(self) -> float | None:
        if self.steps is None and self.epochs is None:
            return self.time_budget or DEFAULT_BUDGET
        return None


@dataclass
class GpuPlan:
    """The GPU environment of the children and what training must then run on."""

    env: dict[str, str]
    expect: str  # gpu | cpu | any (no SPEC given and NVML sees no GPU: whatever TensorFlow finds)
    spec: str | None  # the SPEC applied (given, or chosen for the user); None: none given and none applied
    no_gpu_reason: str | None = None  # why NVML lists no GPU (reported, not hidden)


def gpu_environment(spec: str | None, strategy: str) -> GpuPlan:
    """The children's environment, through envdoctor.gpus like `envdoctor env`.

    NVML seeing no GPU is not proof that CUDA has none (a container without NVIDIA's `utility` capability, a
    hung NVML): without --gpus, CUDA_VISIBLE_DEVICES is then left alone and any device is accepted, reported as
    found; an explicit `all` then expects a GPU, and SPECs that name GPUs (indices, UUIDs, auto:N) are refused,
    as `envdoctor env` refuses them."""
    from envdoctor.gpus import environment_for
    from envdoctor.gpus.snapshot import live_gpus
    from envdoctor.gpus.spec import parse_spec

    gpus, why = live_gpus()
    if spec is None and not gpus:
        return GpuPlan(environment_for("all", []), "any", None, why)  # `all` of none: hides nothing
    if not gpus and spec is not None and spec.strip() != "none":
        refuse_gpus_without_any(spec, why)
    if spec is None:
        spec = "all" if strategy == "mirrored" else "auto:1"
    if strategy == "mirrored":  # before auto:N records a pick: a refused run reserves nothing
        check_mirrored(parse_spec(spec, gpus, why), spec)
    env = environment_for(spec, gpus, allow_growth=True, no_gpu_reason=why)
    visible = env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    expect = "cpu" if spec.strip() == "none" or visible in ("", "-1") else "gpu"
    return GpuPlan(env, expect, spec, why)


def cuda_devices_present(dev: Path = Path("/dev")) -> bool:
    """Whether CUDA could open a GPU at all: its device files (/dev/nvidia0..., or WSL2's /dev/dxg). Without them no
    process, TensorFlow included, sees an NVIDIA GPU, whatever NVML says; with them NVML may just be missing (a
    container without the `utility` capability) while CUDA works."""
    try:
        return (dev / "dxg").exists() or any(p.name[len("nvidia") :].isdigit() for p in dev.glob("nvidia[0-9]*"))
    except OSError:
        return True  # unknown: let TensorFlow tell


def refuse_gpus_without_any(spec: str, why: str | None) -> None:
    """NVML lists no GPU and --gpus asks for one: refuse before TensorFlow starts (~9 s) where the answer is known,
    suggesting only what works here (issue 14): `--gpus all` only where CUDA's device files exist."""
    from envdoctor.errors import EnvironmentProblem

    reason = f" ({why})" if why else ""
    devices = cuda_devices_present()
    if spec.strip() == "all":
        if devices:  # NVML missing, CUDA may still see one: TensorFlow tells (and the run fails on the CPU)
            return
        raise EnvironmentProblem(
            f"--gpus all asks for a GPU, and this machine has none{reason}; no /dev/nvidia* "
            "device exists: run with --gpus none, or without --gpus (any device TensorFlow finds)"
        )
    maybe_all = ", or --gpus all to let TensorFlow look for one NVML cannot see" if devices else ""
    raise UsageError(
        f"--gpus {spec.strip()[:80]} names GPUs, and NVML lists none here{reason}: run with --gpus none, "
        f"or without --gpus (any device TensorFlow finds){maybe_all}"
    )


def check_mirrored(selection: Selection, spec: str) -> None:
    """--strategy mirrored measures scaling: refuse fewer than 2 devices when the SPEC already says so. A CUDA
    process uses one MIG device however many are visible; `all` without NVML GPUs is unknown until TF starts."""
    if selection.auto is not None:
        count = selection.auto
    elif selection.all_gpus and not selection.devices:
        return
    else:
        whole = {d.uuid for d in selection.devices if d.mig is None}
        count = len(whole) + any(d.mig is not None for d in selection.devices)
    if count < 2:
        where = "this machine has" if selection.all_gpus else f"--gpus {spec} gives"
        advice = "" if selection.all_gpus else "use --gpus all (on a machine with 2+ GPUs), or "
        raise UsageError(
            f"--strategy mirrored needs at least 2 devices to measure scaling, and {where} {count}: "
            f"{advice}drop --strategy mirrored"
        )


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
    except cifar.DataError as exc:  # the user's own --data: exit 2; a failed download or cache: exit 1
        raise cifar.exit_error(exc) from exc
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
        raise UsageError(
            f"--batch-size {options.batch_size} is larger than the {summary['train_images']} training images"
        )


def _python() -> str:
    return sys.executable or shutil.which("python3") or "python3"


def _spawn(
    module: str, config_json: str, run_dir: Path, name: str, env: dict[str, str], unset: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """unset: variables of this shell the child must not inherit (a --tune leg measures TensorFlow's defaults)."""
    config = run_dir / f"{name}.json"
    config.write_text(config_json)
    inherited = {k: v for k, v in os.environ.items() if k not in unset}
    child_env = {
        **inherited,
        **env,
        "PYTHONUNBUFFERED": "1",
        child.PARENT_ENV: str(os.getpid()),
        # autograph's temporary modules, left behind by os._exit (child.run_child): removed with run_dir
        "TMPDIR": str(run_dir),
        # 0 keeps TF's INFO start-up lines (cpu_feature_guard) in the log for add_log_facts
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"),
    }
    # Our own Python child, streamed line by line (runner.run_command only returns output at the end); same rules:
    # no shell, its own session so a timeout, Ctrl-C or SIGTERM kills the whole group (see _signals_raise), and
    # the child dies with us if we are killed outright (child.die_with_parent). Its stderr, TensorFlow's chatter,
    # goes to a log shown only when something fails.
    with open(run_dir / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [_python(), "-m", module, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=child_env,
            start_new_session=True,
        )


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


def run(
    options: SmokeOptions, on_event: Callable[[str, Event], None], log: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Run the smoke test; return the result (see report.py) with "ok" and "failures" filled in."""
    options.validate()
    started = time.perf_counter()
    plan = gpu_environment(options.gpus, options.strategy)
    env = plan.env
    if options.strategy == "multi-worker":
        env["TF_CONFIG"] = multiworker.tf_config(multiworker.parse_workers(options.workers), options.worker_index)
    run_dir = _make_run_dir()
    log(report.plan_line(options.budget, options.steps, options.epochs))
    try:
        with _signals_raise():
            data_file, summary = prepare_data(options, run_dir, log)
            check_batch_size(options, summary)
            watch = contention.Watch()
            procs = _start_children(options, data_file, summary, plan.expect, env, run_dir)
            result = _collect(procs, run_dir, options, _marking(watch, on_event))
            windows = watch.windows()
            result.update(contention_windows=windows, contention=_measured_window(windows))
            add_log_facts(result, run_dir)
            add_tune_facts(result)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    # The parent's data summary: a run whose child died before its result still says where the data came from.
    result.update(
        data=summary,
        options=asdict(options),
        gpu_spec=plan.spec,
        gpu_environment=env,
        expect=plan.expect,
        no_gpu_reason=plan.no_gpu_reason,
        wall_seconds=time.perf_counter() - started,
    )
    return judge(result, options)


def _marking(watch: contention.Watch, on_event: Callable[[str, Event], None]) -> Callable[[str, Event], None]:
    """on_event, plus a /proc snapshot at each of the training's phase boundaries."""

    def forward(source: str, event: Event) -> None:
        if source == "train" and event.get("event") == "phase":
            watch.mark(event["phase"])
        on_event(source, event)

    return forward


def _measured_window(windows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The window the headline numbers come from: calibration and training together (both feed utilization)."""
    return windows.get("measured") or windows.get("train") or windows.get("run") or {}


def _make_run_dir() -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix="envdoctor-smoke-"))
    except OSError as exc:  # TMPDIR missing or read-only: one line, as for the cache folder
        raise UsageError(
            f"cannot create a run folder in {tempfile.gettempdir()}: {exc.strerror or exc} "
            "(set TMPDIR to a writable folder)"
        ) from exc


LOG_HEAD = 1 << 18  # bytes of the training log searched for TensorFlow's start-up lines


def add_tune_facts(result: dict[str, Any]) -> None:
    """What `smoke-test --tune` measured before on this CPU model and TensorFlow (the cache), for the verdict to
    cite; only for a CPU run with oneDNN off, the one setting it has a measured word on."""
    from envdoctor.smoke import tunecache

    devices, runtime = result.get("devices") or {}, result.get("runtime") or {}
    if runtime.get("onednn") is not False or devices.get("gpus"):
        return
    measured = tunecache.tune_facts(devices.get("cpu_model"), runtime.get("tf_version"))
    if measured is not None:
        result["tune"] = asdict(measured)


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
    runtime["missing_cpu_instructions"] = missing_cpu_instructions(text) if shown and text is not None else None


def _start_children(
    options: SmokeOptions, data_file: str, summary: dict[str, Any], expect: str, env: dict[str, str], run_dir: Path
) -> dict[str, subprocess.Popen[bytes]]:
    """The training process, and on the chief with --eval-concurrent the evaluator, both with the GPU env."""
    from envdoctor.smoke import evalproc, train

    chief = options.worker_index in (None, 0)
    ckpt_dir = str(run_dir / "checkpoints") if options.eval_concurrent and chief else None
    config = train.RunConfig(
        model=options.model,
        data_file=data_file,
        data=summary,
        steps=options.steps,
        epochs=options.epochs,
        time_budget=options.budget,
        batch_size=options.batch_size,
        precision=options.precision,
        strategy=options.strategy,
        expect=expect,
        checkpoint_dir=ckpt_dir,
        learning_rate=options.learning_rate,
        seed=options.seed,
        logdir=options.logdir and str(Path(options.logdir).resolve()),
        curve_points=CURVE_POINTS if options.plot or options.logdir else 0,
    )
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


CURVE_POINTS = 8  # test-subset evaluations along a run for --plot/--logdir (their time is not training time)
EVAL_GRACE = 120.0  # seconds the evaluator may take, once training has ended, for its last checkpoint


def _collect(
    procs: dict[str, subprocess.Popen[bytes]],
    run_dir: Path,
    options: SmokeOptions,
    on_event: Callable[[str, Event], None],
) -> dict[str, Any]:
    """Forward every child event to on_event until all children end (or the timeout kills them)."""
    events: queue.Queue[tuple[str, Event | None]] = queue.Queue()
    for name, proc in procs.items():
        threading.Thread(target=_pump, args=(proc, name, events), daemon=True).start()
    result: dict[str, Any] = {}
    evaluations: list[Event] = []
    errors: list[str] = []
    evaluator: dict[str, Any] = {}  # the evaluator's GPUs, model device and precision policy
    try:
        _pump_events(events, set(procs), options, on_event, result, evaluations, errors, evaluator)
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
            "ran": bool(evaluations),
            "returncode": procs["eval"].returncode,
            **evaluator,
            "during_training": sum(bool(e.get("during_training")) for e in evaluations),
            "evaluations": [
                {k: e.get(k) for k in ("step", "precision_at_1", "seconds", "during_training")} for e in evaluations
            ],
        }
    return result


STARTUP_WAIT = 120.0  # seconds a multi-worker worker waits for the others to join (--timeout overrides)


def _pump_events(
    events: queue.Queue[tuple[str, Event | None]],
    open_streams: set[str],
    options: SmokeOptions,
    on_event: Callable[[str, Event], None],
    result: dict[str, Any],
    evaluations: list[Event],
    errors: list[str],
    evaluator: dict[str, Any],
) -> None:
    """Read events until every stream closes or the deadline passes. When training ends, the evaluator gets
    EVAL_GRACE seconds for its last checkpoint, or none if training left no result: it would wait for checkpoints
    that never come (the caller kills it). A multi-worker worker waiting for its peers gets STARTUP_WAIT."""
    limit = _timeout(options)
    deadline = time.monotonic() + limit
    waiting: tuple[float, float, list[str]] | None = None  # (since, deadline, peers) while the strategy waits
    while open_streams:
        until = min(deadline, waiting[1]) if waiting else deadline
        try:
            name, event = events.get(timeout=max(0.1, until - time.monotonic()))
        except queue.Empty:
            errors.append(_deadline_error(waiting, limit, open_streams))
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
        elif kind == "eval_start":
            evaluator.update({k: event.get(k) for k in ("gpus", "device", "precision")})
        elif kind == "eval":
            evaluations.append(event)
        elif kind == "error":
            errors.append(f"{name}: {event['message']}")
        elif "waiting_for" in event:
            now = time.monotonic()
            waiting = (now, now + (options.timeout or STARTUP_WAIT), event["waiting_for"])
        elif kind == "strategy_ready":
            waiting = None
        on_event(name, event)


def _deadline_error(waiting: tuple[float, float, list[str]] | None, limit: float, open_streams: set[str]) -> str:
    """Why the run stops: peers that never joined (those not even listening named), or the plain timeout."""
    if waiting:
        since, _deadline, peers = waiting
        absent = [peer for peer in peers if not multiworker.listening(peer)]
        which = f" (not listening: {', '.join(absent)})" if absent else f" (waited for {', '.join(peers)})"
        return (
            f"the other workers did not join within {time.monotonic() - since:.0f}s{which}: start each with "
            "the same --workers "
            "and its own --worker-index, or give a longer --timeout"
        )
    if "train" in open_streams:
        return f"timed out after {limit:.0f}s"
    return f"eval: still running {EVAL_GRACE:.0f}s after training ended"


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
    headline, reasons = verdict.judge(result)
    result.update(
        verdict=headline,
        reasons=verdict.as_dicts(reasons),
        failed=headline == "failed",
        # ok: the setup is proven to train as it should (unreliable numbers or speed warnings aside)
        ok=headline in ("ok", "warnings", "unreliable"),
    )
    return result


def device_failures(result: dict[str, Any], options: SmokeOptions) -> list[str]:
    """Training on another device than asked: the CPU for a GPU, a GPU for --gpus none, fewer GPUs than the
    mirrored run was given, a mirrored run on one device (nothing to scale), an evaluator off the GPU."""
    nvml = f" (NVML: {result['no_gpu_reason']})" if result.get("no_gpu_reason") else ""
    failures = [result["device_mismatch"] + nvml] if result.get("device_mismatch") else []
    device = str(result.get("variable_device") or "")
    expect = result.get("expect") or result.get("config", {}).get("expect")
    spec = result.get("gpu_spec") or options.gpus
    if expect == "gpu" and device and "GPU" not in device.upper():
        failures.append(f"asked for a GPU (--gpus {spec}) but training ran on {device}{nvml}")
    if expect == "cpu" and "GPU" in device.upper():
        failures.append(f"asked for the CPU (--gpus {spec}) but training ran on {device}")
    visible = str((result.get("gpu_environment") or {}).get("CUDA_VISIBLE_DEVICES") or "")
    given = len([v for v in visible.split(",") if v.strip() not in ("", "-1")])
    replicas = (result.get("strategy") or {}).get("replicas")
    if options.strategy == "mirrored" and expect == "gpu" and replicas and given > replicas:
        failures.append(
            f"the mirrored run was given {given} GPUs (CUDA_VISIBLE_DEVICES={visible}) but trained on {replicas}"
        )
    elif options.strategy == "mirrored" and replicas == 1:
        only = device or ", ".join((result.get("strategy") or {}).get("devices") or []) or "?"
        failures.append(f"--strategy mirrored ran on 1 device ({only}): no scaling measured")
    return failures + evaluator_failures(result, device)


def evaluator_failures(result: dict[str, Any], train_device: str) -> list[str]:
    """--eval-concurrent exists to show both processes on the GPU (the classic OOM): the evaluator on the CPU
    next to a GPU training proves nothing."""
    evaluator = (result.get("eval_process") or {}).get("device")
    if evaluator and "GPU" in train_device.upper() and "GPU" not in evaluator.upper():
        return [f"training ran on {train_device} but the concurrent evaluator on {evaluator}"]
    return []

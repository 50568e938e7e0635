"""Rendering a smoke-test: live progress (a rich bar on a terminal, the tutorial's lines otherwise), the final
human summary, and the --json document."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, TextIO

from envdoctor.resources import load_recipe


def tutorial_line(event: dict[str, Any]) -> str:
    """cifar10_train.py's log line, with images instead of examples; the first chunk is marked as warm-up (its
    rate includes tracing and compilation, and the summary leaves it out)."""
    warmup = " [warm-up: tracing and compiling, not counted]" if event.get("warmup") else ""
    return (
        f"step {event['step']}, loss = {event['loss']:.2f} ({event['images_per_sec']:.1f} images/sec; "
        f"{event['sec_per_batch']:.3f} sec/batch){warmup}"
    )


PHASE_WORDS = {
    "calibrate": "calibrating",
    "train": "training",
    "recheck": "rechecking the matmul rate",
    "evaluate": "evaluating",
}


class Progress:
    """Turns child events into output: a rich progress bar on a terminal, plain lines otherwise. Either way it
    says the phase, the elapsed and remaining time, and images/s; evaluation shows its own progress."""

    def __init__(self, stream: TextIO, interactive: bool | None = None) -> None:
        import time

        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._bar: Any = None
        self._task: Any = None
        self._clock = time.monotonic
        self._started = self._clock()
        self._phase: dict[str, Any] = {}  # the training's current "phase" event
        self._last_plain = 0.0

    def __enter__(self) -> Progress:
        if self.interactive:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            from envdoctor.report.console import make_console

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=make_console(self.stream),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("starting TensorFlow", total=1.0, status="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def elapsed(self) -> float:
        return self._clock() - self._started

    def _update(self, description: str, completed: float, status: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description, completed=completed, status=status)

    def __call__(self, source: str, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "step":
            self._step(event)
        elif kind == "phase":
            self._phase = event
            self._update(PHASE_WORDS.get(event["phase"], event["phase"]), 0.0, "")
            self.message(f"[{self.elapsed():.0f} s] {phase_line(event)}")
        elif kind == "eval_progress":
            self._eval_progress(event)
        elif kind == "eval":
            self.message(f"eval: step {event['step']}, precision @ 1 = {event['precision_at_1']:.3f}")
        elif kind == "note":
            self.message(f"{source}: {event['message']}")
        elif kind == "error":
            self.message(f"{source}: error: {event['message']}")
        elif kind == "start":
            self._update("building the model", 0.0, f"TensorFlow {event.get('tf_version')} started")

    def _step(self, event: dict[str, Any]) -> None:
        left = remaining(event, self._phase)
        clock = f"{event.get('elapsed', 0):.0f} s of training" + (f", ~{left:.0f} s left" if left is not None else "")
        if self._bar is not None:
            rate = "warming up" if event.get("warmup") else f"{event['images_per_sec']:.0f} images/s"
            self._update(
                "warm-up" if event.get("warmup") else "training",
                event["progress"],
                f"step {event['step']}  loss {event['loss']:.2f}  {rate}  {clock}",
            )
        else:
            self.message(f"{tutorial_line(event)} [{clock}]")

    def _eval_progress(self, event: dict[str, Any]) -> None:
        done, total, spent = event["done"], event["total"], event["elapsed"]
        left = spent * (total - done) / done if done else None
        status = f"{done}/{total} test images, {spent:.0f} s" + (f", ~{left:.0f} s left" if left else "")
        self._update("evaluating", done / max(1, total), status)
        # Off a terminal: a line every 2 s and the last one, not one per batch.
        if self._bar is None and (done == total or self._clock() - self._last_plain >= 2.0):
            self._last_plain = self._clock()
            self.message(f"evaluate: {status}")


def remaining(event: dict[str, Any], phase: dict[str, Any]) -> float | None:
    """Seconds of training left: the budget less the time spent, or the steps left at the recent pace."""
    if phase.get("budget_seconds"):
        return max(0.0, phase["budget_seconds"] - event.get("elapsed", 0.0))
    if phase.get("total_steps") and event.get("sec_per_batch") and not event.get("warmup"):
        return max(0, phase["total_steps"] - event["step"]) * event["sec_per_batch"]
    return None


def phase_line(event: dict[str, Any]) -> str:
    phase = event["phase"]
    if phase == "calibrate":
        return (
            "calibrate: timing matmuls on the training device, in its precision and threads, until stable "
            f"(~{event.get('expected_seconds', 3):.0f} s)"
        )
    if phase == "train":
        amount = (
            f"{event['budget_seconds']:.0f} s budget"
            if event.get("budget_seconds")
            else f"{event.get('total_steps')} steps"
        )
        return (
            f"train: {amount}, {event.get('global_batch')} images per step; the first chunk warms up "
            "(tracing, compiling) and is not counted"
        )
    if phase == "recheck":
        return (
            "recheck: timing the same matmuls again, to see whether the device's rate changed during training "
            f"(~{event.get('expected_seconds', 3):.0f} s)"
        )
    if phase == "evaluate":
        return f"evaluate: {event.get('images')} test images"
    return phase


def plan_line(budget: float | None, steps: int | None, epochs: float | None) -> str:
    """What will happen and about how long it takes, before anything starts."""
    if budget:
        train = f"train for {budget:.0f} s"
        total = f"; about {budget + 28:.0f} s in all on a 2-core CPU (less on a GPU)"
    else:
        train = f"train {steps} steps" if steps else f"train {epochs:g} epochs"
        total = ""
    return (
        f"plan: start TensorFlow (~5 s), calibrate matmuls (~3 s), warm up (first chunk: tracing, compiling), "
        f"{train}, recheck the matmul rate (~3 s), evaluate the test images (~5-15 s for CIFAR-10's 10,000 on a "
        f"CPU){total}"
    )


def device_label(result: dict[str, Any]) -> str:
    devices = result.get("devices", {})
    placed = str(result.get("variable_device") or "")
    gpus = devices.get("gpus") or []
    if "GPU" in placed.upper() and gpus:
        strategy = result.get("strategy", {})
        count = strategy.get("replicas", 1)
        names = sorted({g.get("model") or g["name"] for g in gpus})
        return f"GPU x{count} ({', '.join(names)})" if count > 1 else f"GPU ({names[0]})"
    return f"CPU ({devices.get('cpu_model') or 'unknown model'}, {devices.get('cpu_count')} logical CPUs)"


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The --json document: the verdict and the headline numbers first, then everything the child reported."""
    from envdoctor.smoke import verdict

    model = result.get("model", {})
    rate = result.get("images_per_sec")
    measured = verdict.rates(result)
    single = result.get("single_device_images_per_sec")
    replicas = result.get("strategy", {}).get("replicas", 1)
    runtime = result.get("runtime", {})
    data = result.get("data", {})
    return {
        "ok": result.get("ok", False),
        "verdict": result.get("verdict"),
        "reasons": result.get("reasons", []),
        "failures": result.get("failures", []),
        "device": device_label(result),
        "variable_device": result.get("variable_device"),
        "devices": result.get("devices"),
        "strategy": result.get("strategy"),
        "model": model,
        "images_per_sec": rate,
        "sec_per_batch": result.get("sec_per_batch"),
        "achieved_gflops": measured["achieved_gflops"],
        "calibration_gflops": result.get("calibration_gflops"),
        "calibration": result.get("calibration"),  # spread, stability, size, dtype, device
        "calibration_after": result.get("calibration_after"),  # the same again, after training
        "tune": result.get("tune"),  # what --tune measured before on this CPU and TensorFlow (oneDNN off only)
        # The calibration measures one device; the achieved rate is that of all replicas together.
        "utilization": measured["utilization"],
        "peak_gflops_estimate": measured["peak_gflops"],
        "utilization_of_peak": measured["utilization_of_peak"],
        "contention": result.get("contention"),
        "contention_windows": result.get("contention_windows"),
        "history": result.get("history"),
        "curve": result.get("curve"),
        # Only against a warm rate: with the warm-up inside it (a few steps), a 3-step run "scaled" at 4%.
        "scaling_efficiency": rate / (replicas * single) if rate and single and result.get("warmup_excluded") else None,
        "single_device_probe": result.get("single_device"),  # the yardstick: device, images/s, steps, seconds
        # --eval-concurrent: throughput and calibration share the machine with the evaluator
        "measured_next_to_evaluator": bool((result.get("eval_process") or {}).get("ran")),
        "test_accuracy": result.get("test_accuracy"),
        "steps": result.get("steps"),
        "epochs": result.get("epochs"),
        "final_loss": result.get("final_loss"),
        "nan_loss": bool(result.get("nan_loss")),
        "train_seconds": result.get("train_seconds"),
        "wall_seconds": result.get("wall_seconds"),
        "warmup_excluded": result.get("warmup_excluded"),
        "timings": {
            k: result.get(k)
            for k in ("tf_import_seconds", "warmup_seconds", "train_seconds", "eval_seconds", "wall_seconds")
        },
        "data": data,
        "synthetic_data": bool(data.get("synthetic")),
        "precision": result.get("precision"),
        "tf_version": runtime.get("tf_version"),
        "tf_build": runtime.get("tf_build"),
        "tf_location": runtime.get("tf_location"),
        "tf_distributions": runtime.get("tf_distributions"),
        "tf_missing_cpu_instructions": runtime.get("missing_cpu_instructions"),
        "runtime": runtime,
        "gpu_spec": result.get("gpu_spec"),
        "expected_device": result.get("expect"),  # gpu, cpu, or any: no --gpus and NVML lists no GPU
        "no_gpu_reason": result.get("no_gpu_reason"),
        "gpu_environment": result.get("gpu_environment"),
        "eval_process": result.get("eval_process"),
        # Only rows of the model that ran: the tutorial's K40 images/s say nothing about --model fast.
        "references": [
            r for r in load_recipe("smoke_reference.json")["speed_rows"] if r.get("model") == model.get("name")
        ],
        "options": result.get("options"),
        "config": result.get("config"),
        "errors": result.get("errors"),
        "log_tail": result.get("log_tail"),
    }


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def human(summary: dict[str, Any]) -> str:
    """A short plain-text report (also fine on a terminal). A run that never trained gets only what is known."""
    lines = []
    if summary["synthetic_data"]:
        lines.append("NOTE: SYNTHETIC DATA (--data synthetic): the accuracy below says nothing about CIFAR-10.")
    if summary["model"]:
        lines += _training_lines(summary)
    elif summary.get("tf_version"):
        lines.append(f"tensorflow:  {summary['tf_version']}; device: {summary['device']}")
    lines.append(
        f"data:        {summary['data'].get('source')}; checksum: {summary['data'].get('verified') or 'none applied'}"
    )
    lines += verdict_lines(summary)
    return "\n".join(lines)


MARK = {"ok": "[ok]", "warn": "[! ]", "unreliable": "[~ ]", "inconclusive": "[? ]", "fail": "[x ]"}
HEADLINE = {
    "ok": "OK: the setup trains as it should, at the speed this hardware gives.",
    "warnings": "OK, WITH WARNINGS: it learns, but see the warnings above.",
    "unreliable": "OK, BUT THE NUMBERS ARE UNRELIABLE: other work shared the machine (see above); rerun on a quiet "
    "machine before comparing speeds.",
    "inconclusive": "INCONCLUSIVE: this run does not show that the model learns (see the verdict above); nothing "
    "failed, nothing was proven.",
}


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """Each reason with its mark, then one headline. A failure keeps its classic one-line form."""
    lines = []
    reasons = [r for r in summary.get("reasons") or [] if r["aspect"] != "run"]
    if reasons:
        lines.append("verdict:")
        lines += [f"  {MARK[r['status']]} {r['aspect']}: {r['text']}" for r in reasons]
    if summary["failures"]:
        lines.append("FAILED: " + "; ".join(summary["failures"]))
        for name, tail in (summary.get("log_tail") or {}).items():
            if tail:
                lines.append(f"--- last lines of the {name} process log ---\n{tail}")
        return lines
    headline = summary.get("verdict") or "ok"
    if headline == "failed":
        lines.append("FAILED: " + "; ".join(r["text"] for r in reasons if r["status"] == "fail"))
    elif headline in ("ok", "warnings") and summary.get("expected_device") == "any":
        lines.append(
            f"{HEADLINE[headline]} TensorFlow trained on {summary['device']}; no --gpus given and NVML "
            "lists no GPU, so any device was accepted."
        )
    elif headline in ("ok", "warnings"):
        lines.append(f"{HEADLINE[headline]} TensorFlow trained on the device asked for.")
    else:
        lines.append(HEADLINE[headline])
    return lines


def _training_lines(summary: dict[str, Any]) -> list[str]:
    model, runtime, precision = summary["model"], summary["runtime"], summary.get("precision") or {}
    strategy = summary.get("strategy") or {}
    lines = [
        f"device:      {summary['device']}  [{summary['variable_device']}]",
        _gpus_line(summary),
        f"strategy:    {strategy.get('name')} ({strategy.get('replicas')} replica(s))" + _scaling(summary),
        f"model:       {model.get('name')} ({model.get('params', 0):,} parameters, "
        f"{_fmt(model.get('train_flops_per_image'), ',.0f')} training FLOPs/image)",
        f"precision:   {precision.get('policy')} ({precision.get('why')})",
        f"throughput:  {_fmt(summary['images_per_sec'], '.0f')} images/s, {_fmt(summary['sec_per_batch'], '.3f')} "
        f"sec/batch (warm-up {'excluded' if summary['warmup_excluded'] else 'included: too few steps'})"
        + (f"{NEXT_TO_EVALUATOR}" if summary.get("measured_next_to_evaluator") else ""),
        _compute_line(summary) + (f"{NEXT_TO_EVALUATOR}" if summary.get("measured_next_to_evaluator") else ""),
        _machine_line(summary),
        f"accuracy:    {_fmt(summary['test_accuracy'], '.2%')} on {summary['data'].get('test_images')} test images "
        f"after {summary['steps']} steps ({_fmt(summary['epochs'], '.2f')} epochs, "
        f"{_fmt(summary['train_seconds'], '.0f')} s training, {_fmt(summary['wall_seconds'], '.0f')} s wall)",
        f"tensorflow:  {summary['tf_version']} ({_cuda_build(summary['tf_build'])}), "
        f"oneDNN {'on' if runtime.get('onednn') else 'off'}, intra/inter-op threads "
        f"{runtime.get('intra_op_threads')}/{runtime.get('inter_op_threads')} (0 = TensorFlow's choice)",
        _install_line(summary),
    ]
    if summary.get("eval_process"):
        lines.append(_evaluator_line(summary["eval_process"]))
    rows = summary["references"]
    if rows:
        lines.append("reference:   the same model elsewhere (images/s; hardware, software, when, source):")
        lines += [
            f"  {_rate(r['images_per_sec'])}: {r['system']}; {r['software']}; {r['when']} ({r['source']})" for r in rows
        ]
    return [line for line in lines if line]


def _compute_line(summary: dict[str, Any]) -> str:
    """Achieved against the calibration (this device in this process, how stable) and against the peak."""
    calibration = summary.get("calibration") or {}
    how = ""
    if calibration:
        how = (
            f" ({calibration['size']}x{calibration['size']} {calibration['dtype']} matmuls in the training's "
            f"process and threads, {'stable' if calibration['stable'] else 'NOT stable'}: spread "
            f"{calibration['spread']:.0%} over the last products)"
        )
    peak = ""
    if summary.get("peak_gflops_estimate"):
        peak = (
            f", {_fmt(summary['utilization_of_peak'], '.0%')} of the CPU's float32 peak estimate "
            f"({summary['peak_gflops_estimate']:.0f} GFLOP/s)"
        )
    return (
        f"compute:     {_fmt(summary['achieved_gflops'], '.0f')} GFLOP/s achieved = "
        f"{_fmt(summary['utilization'], '.0%')} of the matmul calibration, "
        f"{_fmt(summary['calibration_gflops'], '.0f')} GFLOP/s per device{how}{peak}"
    )


def _machine_line(summary: dict[str, Any]) -> str:
    """Who else used the machine during calibration and training: always shown, it is what makes numbers
    comparable."""
    window = summary.get("contention") or {}
    if not window:
        return ""
    state = "UNRELIABLE" if window.get("unreliable") else "quiet enough"
    return (
        f"machine:     {state}: others used {window['others_share']:.0%} of the CPU time while it trained "
        f"(steal {window['steal_share']:.0%}), load average up to {window['load_max']:.1f} on "
        f"{window['cpus']} CPUs"
    )


NEXT_TO_EVALUATOR = "; measured next to the concurrent evaluator (sharing the machine)"


def _gpus_line(summary: dict[str, Any]) -> str:
    env = " ".join(f"{k}={v!r}" for k, v in sorted((summary.get("gpu_environment") or {}).items())) or "nothing"
    spec, given = summary.get("gpu_spec"), (summary.get("options") or {}).get("gpus")
    if spec is None:  # no --gpus and no NVML GPU: nothing was chosen, CUDA_VISIBLE_DEVICES stays as it was
        head = "no --gpus given, none chosen"
    else:
        head = f"--gpus {spec}" if given is not None else f"no --gpus given: {spec} chosen"
    line = f"gpus:        {head}, set before TensorFlow started: {env}"
    if summary.get("no_gpu_reason"):
        line += f"; NVML lists no GPU ({summary['no_gpu_reason']})"
    return line


def _scaling(summary: dict[str, Any]) -> str:
    """The efficiency and its yardstick: one device timed for a few seconds after warm-up."""
    probe = summary.get("single_device_probe") or {}
    if not summary.get("scaling_efficiency"):
        return ""
    return (
        f", scaling efficiency {summary['scaling_efficiency']:.0%} of one device "
        f"({_fmt(probe.get('images_per_sec'), '.0f')} images/s over {probe.get('steps')} steps, "
        f"{_fmt(probe.get('seconds'), '.1f')} s)"
    )


def _cuda_build(build: dict[str, Any] | None) -> str:
    """TF's build_info says is_cuda_build True/False (as a string in the JSON): in words for the summary."""
    value = str((build or {}).get("is_cuda_build"))
    return {"True": "CUDA build", "False": "CPU-only build"}.get(value, "CUDA build: unknown")


def _install_line(summary: dict[str, Any]) -> str:
    """Which TensorFlow this was: the distribution, how it was installed, and the CPU instructions its binary
    leaves unused (a stock wheel lists some; a build for this CPU none): before and after `envdoctor build-tf`."""
    owners = [
        f"{d['name']} {d['version']} ({d.get('installer') or 'unknown installer'}, "
        f"{'from ' + d['installed_from'] if d.get('installed_from') else 'from a package index'})"
        for d in summary.get("tf_distributions") or []
    ]
    missing = summary.get("tf_missing_cpu_instructions")
    unused = "unknown (TF_CPP_MIN_LOG_LEVEL hid TensorFlow's line)" if missing is None else " ".join(missing) or "none"
    return (
        f"tf install:  {', '.join(owners) or 'no installed distribution found'} at {summary.get('tf_location')}; "
        f"CPU instructions the binary does not use: {unused}"
    )


def _evaluator_line(process: dict[str, Any]) -> str:
    evaluations = process["evaluations"]
    if not evaluations:
        return "evaluator:   the second process evaluated no checkpoint"
    last = evaluations[-1]
    where = f" on {process['device']} in {process.get('precision')}" if process.get("device") else ""
    return (
        f"evaluator:   a second process{where} evaluated {len(evaluations)} checkpoint(s), "
        f"{process.get('during_training', 0)} of them while training ran; last precision @ 1 = "
        f"{last['precision_at_1']:.3f} at step {last['step']}"
    )


def _rate(pair: list[int]) -> str:
    low, high = pair
    return f"{low}" if low == high else f"{low}-{high}"


def finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no NaN, and strict parsers reject Python's NaN token."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def emit(summary: dict[str, Any], as_json: bool, stream: TextIO = sys.stdout) -> None:
    if as_json:
        stream.write(json.dumps(finite(summary), indent=2, default=str, allow_nan=False) + "\n")
    else:
        stream.write(human(summary) + "\n")

"""`envdoctor smoke-test --tune`: time short legs of the same training under the runtime settings that matter on
this machine, each leg in a fresh process (oneDNN and thread pools are fixed when TensorFlow starts), legs
interleaved and repeated so that a neighbour's noise shows as spread instead of as a winner; then the best setting
as lines to paste, and its measured speed-up against TensorFlow's own defaults.

The speed-up is the median of per-round ratios: each round runs every setting back to back, so a ratio compares
legs that shared the same minute of the machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envdoctor.resources import load_recipe
from envdoctor.smoke import contention

LEG_SECONDS = 8.0  # timed training per leg, after its warm-up chunk
ROUNDS = 2
# Variables a leg sets itself; the stock leg runs without them, whatever this shell exports.
TUNED_VARS = ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@dataclass
class Setting:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # RunConfig overrides: threads, precision, jit_compile


@dataclass
class Leg:
    setting: str
    round: int
    images_per_sec: float | None = None
    calibration_gflops: float | None = None
    utilization: float | None = None
    onednn: bool | None = None
    precision: str | None = None
    error: str | None = None
    contention: dict[str, Any] = field(default_factory=dict)
    tf_version: str | None = None


def onednn_default(flags: set[str]) -> bool:
    """TensorFlow's own default on Linux x86 (recipes/tf_releases.json, port.cc DefaultOneDnnPolicy)."""
    return bool(flags & set(load_recipe("tf_releases.json")["onednn"]["default_on_linux_x86_with"]))


def settings_for(flags: set[str], cpus: int, gpu_cc: tuple[int, int] | None) -> list[Setting]:
    """The settings worth a leg here: the first is TensorFlow's stock behaviour, the yardstick."""
    stock = Setting("stock")
    if gpu_cc is not None:  # on a GPU the CPU's thread pools and oneDNN barely matter; precision and XLA do
        out = [stock, Setting("XLA jit_compile", config={"jit_compile": True})]
        if gpu_cc >= (7, 0):
            out += [
                Setting("mixed_float16", config={"precision": "mixed"}),
                Setting("mixed_float16 + XLA", config={"precision": "mixed", "jit_compile": True}),
            ]
        return out
    threads = {"intra_op_threads": cpus, "inter_op_threads": 1}
    omp = {"OMP_NUM_THREADS": str(cpus)}
    flip = "0" if onednn_default(flags) else "1"
    onednn = f"oneDNN {'off' if flip == '0' else 'on'}"
    out = [
        stock,
        Setting(onednn, {"TF_ENABLE_ONEDNN_OPTS": flip}),
        Setting(f"{onednn} + {cpus} intra-op threads, 1 inter-op", {"TF_ENABLE_ONEDNN_OPTS": flip, **omp}, threads),
        Setting(f"stock + {cpus} intra-op threads, 1 inter-op", dict(omp), threads),
    ]
    if {"avx512_bf16", "amx_bf16"} & flags:  # bfloat16 pays only with hardware support
        out.append(Setting("oneDNN on + mixed_bfloat16", {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"precision": "mixed"}))
    return out


RunLeg = Callable[[Setting, int], Leg]


def tune(
    settings: list[Setting], run_leg: RunLeg, rounds: int = ROUNDS, on_leg: Callable[[Leg], None] = lambda _l: None
) -> tuple[list[Leg], bool]:
    """Every setting once per round, the order rotated each round; (legs, interrupted). Ctrl-C keeps what was
    measured. A leg that crashes is recorded with its error, and the table goes on."""
    legs: list[Leg] = []
    try:
        for r in range(rounds):
            shift = r % len(settings)
            for setting in settings[shift:] + settings[:shift]:
                leg = run_leg(setting, r)
                legs.append(leg)
                on_leg(leg)
    except KeyboardInterrupt:
        return legs, True
    return legs, False


def _shared(leg: Leg | None) -> bool:
    return bool(leg and (leg.contention or {}).get("unreliable"))


def summarize(settings: list[Setting], legs: list[Leg]) -> dict[str, Any]:
    """Per setting: the images/s of each round, their median, and the median of the per-round ratios to stock.

    A round whose leg or stock partner the contention window marked (another process, the hypervisor's steal)
    does not decide a ratio while a round measured on a machine of our own exists: one leg robbed of 11% of the
    CPU once made the second-best setting the winner (bench/README.md, 03:40 UTC). Its images/s stay in the table.
    """
    stock = settings[0].name
    by_round = {(leg.setting, leg.round): leg for leg in legs}
    rows: list[dict[str, Any]] = []
    for setting in settings:
        mine = [leg for leg in legs if leg.setting == setting.name]
        rated = [(leg.images_per_sec, _shared(leg)) for leg in mine if leg.images_per_sec]
        rates = [rate for rate, _ in rated]
        quiet: list[float] = []
        shared: list[float] = []
        for leg in mine:
            base = by_round.get((stock, leg.round))
            if leg.images_per_sec and base and base.images_per_sec:
                ratio = leg.images_per_sec / base.images_per_sec
                (shared if _shared(leg) or _shared(base) else quiet).append(ratio)
        ratios = quiet or shared
        trusted = [leg for leg in mine if not _shared(leg)] or mine
        utilizations = [leg.utilization for leg in trusted if leg.utilization]
        rows.append(
            {
                "setting": setting.name,
                "env": setting.env,
                "config": setting.config,
                "rates": rates,
                "shared": [shared for _, shared in rated],  # per rate: measured on a shared machine
                "median": statistics.median(rates) if rates else None,
                "ratio": statistics.median(ratios) if ratios else None,
                "ratio_range": [min(ratios), max(ratios)] if ratios else None,
                "ratio_rounds": len(ratios),
                "utilization": statistics.median(utilizations) if utilizations else None,
                "calibration_gflops": _median([leg.calibration_gflops for leg in trusted]),
                "errors": sorted({leg.error for leg in mine if leg.error}),
                "unreliable": not quiet and bool(shared),
            }
        )
    measured = [row for row in rows if row["ratio"] is not None]
    best = max(measured, key=lambda row: row["ratio"], default=None)
    return {"rows": rows, "best": best, "stock": stock}


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v]
    return statistics.median(present) if present else None


def paste_lines(row: dict[str, Any]) -> list[str]:
    """The best setting as lines to paste: exports for the shell, tf.config/keras calls for the program."""
    lines = [f"export {k}={v}" for k, v in row["env"].items()]
    config = row["config"]
    python = []
    if "intra_op_threads" in config:
        python += [
            f"tf.config.threading.set_intra_op_parallelism_threads({config['intra_op_threads']})",
            f"tf.config.threading.set_inter_op_parallelism_threads({config['inter_op_threads']})",
        ]
    if config.get("precision") == "mixed":
        policy = "mixed_float16" if "float16" in row["setting"] else "mixed_bfloat16"
        python.append(f'keras.mixed_precision.set_global_policy("{policy}")')
    if config.get("jit_compile"):
        python.append("@tf.function(jit_compile=True)  # on the training step")
    if python:
        lines.append("# in Python, before TensorFlow runs its first op:")
        lines += python
    return lines or ["# TensorFlow's defaults are already the fastest setting measured here: nothing to change"]


def table(summary: dict[str, Any]) -> list[str]:
    lines = [f"{'setting':<48} {'images/s by round':<22} {'median':>7} {'vs stock':>16} {'util':>5}"]
    for row in summary["rows"]:
        marked = zip(row["rates"], row["shared"], strict=True)
        rates = " ".join(f"{r:.0f}{'*' if shared else ''}" for r, shared in marked) or "-"
        ratio = "-"
        if row["ratio"] is not None:
            low, high = row["ratio_range"]
            ratio = f"{row['ratio']:.2f}x" + (f" ({low:.2f}-{high:.2f})" if high - low > 0.005 else "")
        util = f"{row['utilization']:.0%}" if row["utilization"] else "-"
        median = f"{row['median']:.0f}" if row["median"] else "-"
        flag = "  UNRELIABLE: machine shared" if row["unreliable"] else ""
        lines.append(f"{row['setting']:<48} {rates:<22} {median:>7} {ratio:>16} {util:>5}{flag}")
        lines += [f"    crashed: {error}" for error in row["errors"]]
    return lines


def report_lines(summary: dict[str, Any], interrupted: bool, cached: str | None) -> list[str]:
    lines = table(summary)
    best = summary["best"]
    if interrupted:
        lines.append("INTERRUPTED (Ctrl-C): the table holds the legs measured so far.")
    if best is None:
        lines.append("no leg measured against the stock setting: nothing to recommend")
        return lines
    low, high = best["ratio_range"]
    rounds = best["ratio_rounds"]
    lines.append(
        f"best: {best['setting']}: {best['ratio']:.2f}x the stock settings' images/s (median of {rounds} "
        f"round{'s' if rounds != 1 else ''}, each round {low:.2f}-{high:.2f}x)"
    )
    if low < 1.0 <= best["ratio"] and best["setting"] != summary["stock"]:
        lines.append("  (one round measured it slower than stock: the gain is within this machine's noise)")
    lines += [f"  {line}" for line in paste_lines(best)]
    if any(any(row["shared"]) for row in summary["rows"]):
        lines.append(
            "* measured while another process or the hypervisor took part of the CPU: such rounds decide no "
            "ratio while rounds on a machine of our own exist"
        )
    if any(row["unreliable"] for row in summary["rows"]):
        lines.append(
            "WARNING: other work used the machine during some legs (marked): rerun on a quiet machine "
            "before trusting small differences."
        )
    if cached:
        lines.append(f"saved: {cached} (the doctor cites it)")
    return lines


def to_cache(summary: dict[str, Any], legs: list[Leg], facts: dict[str, Any], rounds: int) -> dict[str, Any]:
    """What the doctor needs: the oneDNN leg's measured gain over stock, and the best setting."""
    onednn = next((row for row in summary["rows"][1:2] if row["setting"].startswith("oneDNN")), None)
    gain = None
    if onednn and onednn["ratio"] is not None:
        gain = {
            "ratio": round(onednn["ratio"], 3),
            "versus": "off" if onednn["env"].get("TF_ENABLE_ONEDNN_OPTS") == "1" else "on",
            "setting": onednn["setting"],
            "rounds": rounds,
        }
    return {
        **facts,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rounds": rounds,
        "leg_seconds": LEG_SECONDS,
        "onednn_gain": gain,
        "best": summary["best"],
        "rows": summary["rows"],
        "unreliable": any(row["unreliable"] for row in summary["rows"]),
        "legs": [leg.__dict__ for leg in legs],
    }


def leg_from_result(setting: Setting, round_: int, result: dict[str, Any]) -> Leg:
    from envdoctor.smoke import verdict

    failures = result.get("errors") or ([] if result.get("images_per_sec") else ["no timed steps"])
    return Leg(
        setting.name,
        round_,
        images_per_sec=None if failures else result.get("images_per_sec"),
        calibration_gflops=result.get("calibration_gflops"),
        utilization=verdict.rates(result)["utilization"],
        onednn=(result.get("runtime") or {}).get("onednn"),
        precision=(result.get("precision") or {}).get("policy"),
        error="; ".join(failures) if failures else None,
        contention=result.get("contention") or {},
    )


# ---------------------------------------------------------------- running it (the parent: no TensorFlow here)


def run(options: Any, log: Callable[[str], None]) -> tuple[list[str], bool, dict[str, Any]]:
    """Run every leg, a line per leg as it ends; (report lines, interrupted, the --json document)."""
    from envdoctor.smoke import session, tunecache
    from envdoctor.smoke.train import cpu_facts

    options.validate()
    plan = session.gpu_environment(options.gpus, "default")
    cpu = cpu_facts()
    gpu_cc = _gpu_capability() if plan.expect == "gpu" else None
    settings = settings_for(set(cpu.flags), cpu.threads or cpu.cores or 1, gpu_cc)
    rounds = options.tune_rounds
    log(
        f"tune: {len(settings)} settings x {rounds} rounds, {LEG_SECONDS:.0f} s of training each, every leg a "
        f"fresh process (about {len(settings) * rounds * (LEG_SECONDS + 12) / 60:.0f} min on a 2-core CPU)"
    )
    run_dir = session._make_run_dir()
    facts: dict[str, Any] = {"cpu_model": cpu.model, "cpu_count": cpu.threads, "cpu_flags": sorted(cpu.flags)}
    try:
        with session._signals_raise():
            data_file, data = session.prepare_data(options, run_dir, log)
            counter = iter(range(1, len(settings) * rounds + 1))

            def one_leg(setting: Setting, round_: int) -> Leg:
                leg = _run_leg(options, setting, round_, data_file, data, plan, run_dir)
                log(
                    f"leg {next(counter)}/{len(settings) * rounds} (round {round_ + 1}) {setting.name}: "
                    + _leg_words(leg)
                )
                return leg

            legs, interrupted = tune(settings, one_leg, rounds)
            facts["tf_version"] = next((leg.tf_version for leg in legs if leg.tf_version), None)
    finally:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    summary = summarize(settings, legs)
    document = to_cache(summary, legs, facts, rounds)
    cached = None
    if not interrupted and summary["best"] is not None:
        path = tunecache.save(document)
        cached = str(path) if path else None
    document.update(
        interrupted=interrupted, cache=cached, paste=paste_lines(summary["best"]) if summary["best"] else None
    )
    return report_lines(summary, interrupted, cached), interrupted, document


def _gpu_capability() -> tuple[int, int] | None:
    from envdoctor.gpus.snapshot import live_gpus

    gpus, _why = live_gpus()
    cc = gpus[0].compute_capability if gpus else None
    try:
        major, minor = (int(x) for x in (cc or "0.0").split(".")[:2])
    except ValueError:
        return (0, 0)
    return (major, minor)


def _leg_words(leg: Leg) -> str:
    if leg.error:
        return f"crashed or failed: {leg.error} (skipped)"
    util = f", {leg.utilization:.0%} of its calibration" if leg.utilization else ""
    busy = " [machine shared: unreliable]" if (leg.contention or {}).get("unreliable") else ""
    return f"{leg.images_per_sec:.0f} images/s (oneDNN {'on' if leg.onednn else 'off'}, {leg.precision}{util}){busy}"


def _run_leg(
    options: Any, setting: Setting, round_: int, data_file: str, data: dict[str, Any], plan: Any, run_dir: Any
) -> Leg:
    """One leg: the training child with this setting's environment and config, training for LEG_SECONDS, no
    evaluation; its contention window measured like a smoke-test's."""
    from envdoctor.smoke import session, train

    fields = {
        "model": options.model,
        "data_file": data_file,
        "data": data,
        "time_budget": LEG_SECONDS,
        "batch_size": options.batch_size,
        "precision": options.precision,
        "expect": plan.expect,
        "evaluate": False,
        "seed": options.seed,
    }
    config = train.RunConfig(**{**fields, **setting.config})
    watch = contention.Watch()
    proc = session._spawn(
        "envdoctor.smoke.train", config.to_json(), run_dir, "train", {**plan.env, **setting.env}, unset=TUNED_VARS
    )
    leg_options = session.SmokeOptions(time_budget=LEG_SECONDS, timeout=LEG_SECONDS * 6 + 120)
    result = session._collect({"train": proc}, run_dir, leg_options, session._marking(watch, lambda _s, _e: None))
    result["contention"] = session._measured_window(watch.windows())
    leg = leg_from_result(setting, round_, result)
    leg.tf_version = (result.get("runtime") or {}).get("tf_version")
    if result.get("errors"):
        leg.error = "; ".join(result["errors"]) + _last_line(result)
    return leg


def _last_line(result: dict[str, Any]) -> str:
    tail = (result.get("log_tail") or {}).get("train") or ""
    lines = [line for line in tail.splitlines() if line.strip()]
    return f" ({lines[-1].strip()[:200]})" if lines else ""

"""The smoke-test's verdict: did the model learn as it should, is the speed what this hardware gives, and can the
numbers be trusted (nobody else used the machine, the calibration held still)?

Pure functions of the run's result and recipes/smoke_reference.json; no TensorFlow, no numpy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from envdoctor.resources import load_recipe

Status = Literal["ok", "warn", "unreliable", "inconclusive", "fail"]
Verdict = Literal["ok", "warnings", "unreliable", "inconclusive", "failed"]
Aspect = Literal["run", "learning", "speed", "calibration", "contention"]

# The headline is the most severe status among the reasons, in this order.
_SEVERITY: dict[Status, tuple[int, Verdict]] = {
    "ok": (0, "ok"),
    "warn": (1, "warnings"),
    "unreliable": (2, "unreliable"),
    "inconclusive": (3, "inconclusive"),
    "fail": (4, "failed"),
}
CHANCE = 0.10  # ten classes


@dataclass
class Reason:
    aspect: Aspect
    status: Status
    text: str


def reference() -> dict[str, Any]:
    return load_recipe("smoke_reference.json")


# ---------------------------------------------------------------- learning


def reference_accuracy(model: str, epochs: float) -> float | None:
    """The reference curve's final test accuracy for a run of `epochs` epochs: linear in log(epochs) between
    measured points, chance at zero, flat beyond the last point."""
    curve = reference()["learning_curves"].get(model)
    if not curve or not epochs or epochs <= 0:
        return None
    points = sorted((p["epochs"], p["test_accuracy"]) for p in curve["points"])
    if epochs <= points[0][0]:  # from chance at no training to the first point, linear in epochs
        return CHANCE + (points[0][1] - CHANCE) * epochs / points[0][0]
    for (e0, a0), (e1, a1) in zip(points, points[1:], strict=False):
        if epochs <= e1:
            t = (math.log(epochs) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return a0 + t * (a1 - a0)
    return points[-1][1]


def _is_reference_data(data: dict[str, Any]) -> bool:
    """The curve was measured on the real CIFAR-10 (all 50,000 + 10,000 images, checksum verified)."""
    return (
        not data.get("synthetic")
        and data.get("train_images") == 50000
        and data.get("test_images") == 10000
        and bool(data.get("verified"))
    )


def learning(result: dict[str, Any]) -> Reason:
    accuracy, epochs = result.get("test_accuracy"), result.get("epochs") or 0.0
    if accuracy is None:
        return Reason("learning", "inconclusive", "no test accuracy was measured")
    rules = reference()["judge"]
    model = str((result.get("model") or {}).get("name") or (result.get("config") or {}).get("model") or "")
    data = result.get("data") or {}
    if data.get("synthetic"):
        return Reason("learning", "inconclusive", "synthetic data: random images cannot be learned, nothing to judge")
    expected = reference_accuracy(model, epochs) if _is_reference_data(data) else None
    if expected is None:
        return _without_reference(accuracy, epochs, rules)
    lowest = max(CHANCE, expected - max(rules["margin"], rules["relative_margin"] * expected))
    said = (
        f"{accuracy:.1%} test accuracy after {epochs:.2f} epochs; the reference curve reaches {expected:.1%} "
        f"there ({_curve_source(model)})"
    )
    if expected < CHANCE + rules["min_gain"]:  # too short for the reference itself to have learned much
        if accuracy >= CHANCE + rules["min_gain"]:
            return Reason("learning", "ok", f"learned: {said}")
        return Reason(
            "learning",
            "inconclusive",
            f"too short to tell whether it learns: {said}, too close to chance ({CHANCE:.0%}); train at "
            f"least {min_epochs(model, rules):.2f} epochs (--epochs) or the default budget",
        )
    if accuracy >= lowest:
        return Reason("learning", "ok", f"learned as it should: {said}")
    changed = _changed_options(result)
    status: Status = "warn" if changed else "fail"
    why = f" (but {changed}: the reference does not apply exactly)" if changed else ""
    return Reason("learning", status, f"did not learn as it should: {said}, at least {lowest:.1%} expected{why}")


def _without_reference(accuracy: float, epochs: float, rules: dict[str, Any]) -> Reason:
    if accuracy >= CHANCE + rules["min_gain"]:
        return Reason(
            "learning",
            "ok",
            f"learned: {accuracy:.1%} test accuracy after {epochs:.2f} epochs, well "
            f"above chance ({CHANCE:.0%}); no reference curve for this data",
        )
    return Reason(
        "learning",
        "inconclusive",
        f"{accuracy:.1%} test accuracy after {epochs:.2f} epochs, near chance "
        f"({CHANCE:.0%}), and no reference curve for this data to say whether "
        "that is expected",
    )


def min_epochs(model: str, rules: dict[str, Any]) -> float:
    """The shortest run whose reference accuracy is clearly above chance."""
    points = sorted((p["epochs"], p["test_accuracy"]) for p in reference()["learning_curves"][model]["points"])
    target = CHANCE + rules["min_gain"]
    epochs = points[0][0] * 0.01
    while (reference_accuracy(model, epochs) or 0) < target and epochs < points[-1][0]:
        epochs *= 1.1
    return epochs


def _curve_source(model: str) -> str:
    curve = reference()["learning_curves"][model]
    return f"{curve['measured_on']}, batch {curve['batch_size']}"


def _changed_options(result: dict[str, Any]) -> str:
    """Options that move the learning curve away from the reference's."""
    config = result.get("config") or {}
    curve = reference()["learning_curves"].get(config.get("model"), {})
    changed = []
    if config.get("batch_size") not in (None, curve.get("batch_size")):
        changed.append(f"--batch-size {config['batch_size']}")
    if config.get("learning_rate") is not None:
        changed.append(f"--learning-rate {config['learning_rate']}")
    replicas = (result.get("strategy") or {}).get("replicas") or 1
    if replicas > 1:
        changed.append(f"{replicas} replicas (global batch {replicas * (config.get('batch_size') or 0)})")
    return ", ".join(changed)


# ---------------------------------------------------------------- speed and calibration


def rates(result: dict[str, Any]) -> dict[str, float | None]:
    """Achieved GFLOP/s, and utilization against the calibration (all replicas) and against the CPU's peak."""
    model = result.get("model") or {}
    rate = result.get("images_per_sec")
    flops = model.get("train_flops_per_image")
    achieved = rate * flops / 1e9 if rate and flops else None
    calibration = result.get("calibration_gflops")
    replicas = (result.get("strategy") or {}).get("replicas") or 1
    peak = peak_gflops(result)
    return {
        "achieved_gflops": achieved,
        "utilization": achieved / (calibration * replicas) if achieved and calibration else None,
        "peak_gflops": peak,
        "utilization_of_peak": achieved / peak if achieved and peak else None,
        "calibration_of_peak": calibration / peak if calibration and peak else None,
    }


def peak_gflops(result: dict[str, Any]) -> float | None:
    """The CPU's float32 peak estimate (cores x clock x FLOPs per cycle, from the doctor's CPU probe), for a
    float32 run on the CPU; None on a GPU or in another precision, where it would not be the yardstick."""
    devices = result.get("devices") or {}
    on_gpu = "GPU" in str(result.get("variable_device") or "").upper()
    if on_gpu or result.get("calibration_dtype") not in (None, "float32"):
        return None
    return devices.get("cpu_peak_gflops")


def speed(result: dict[str, Any]) -> list[Reason]:
    measured = rates(result)
    rules = reference()["judge"]
    reasons: list[Reason] = []
    utilization, kind = measured["utilization"], _device_kind(result)
    expected = reference()["expected_utilization"].get((result.get("model") or {}).get("name") or "", {}).get(kind)
    if utilization is not None and expected is not None:
        said = (
            f"{measured['achieved_gflops']:.0f} GFLOP/s achieved is {utilization:.0%} of the matmul calibration "
            f"({result['calibration_gflops']:.0f} GFLOP/s)"
        )
        if utilization >= expected["low"]:
            reasons.append(
                Reason(
                    "speed",
                    "ok",
                    f"{said}; this model reaches {expected['low']:.0%}-"
                    f"{expected['high']:.0%} on a {kind.upper()} ({expected['source']})",
                )
            )
        else:
            reasons.append(
                Reason(
                    "speed",
                    "warn",
                    f"{said}, below the {expected['low']:.0%} this model reaches on "
                    f"a {kind.upper()} ({expected['source']}): {tips(result)}",
                )
            )
    share = measured["calibration_of_peak"]
    if share is not None and share < rules["calibration_of_peak_low"]:
        reasons.append(
            Reason(
                "calibration",
                "warn",
                f"the matmul calibration ({result['calibration_gflops']:.0f} GFLOP/s) is only "
                f"{share:.0%} "
                f"of this CPU's float32 peak estimate ({measured['peak_gflops']:.0f} GFLOP/s): "
                f"{tips(result)}",
            )
        )
    return reasons + onednn_off(result) + calibration_trust(result)


ONEDNN_WORTH = 1.2  # a measured gain from which leaving oneDNN off is worth a warning


def onednn_off(result: dict[str, Any]) -> list[Reason]:
    """A CPU run with oneDNN off says what turning it on did here (the --tune cache), or how to find out: on the
    2-core AVX2 VM it was 1.7-2.0x the images/s and 60-62% instead of 55-56% accuracy in the same default budget
    (bench/README.md), and a run whose speed is otherwise "ok" would not have said so."""
    if _device_kind(result) != "cpu" or (result.get("runtime") or {}).get("onednn") is not False:
        return []
    tune = result.get("tune") or {}
    ratio = tune.get("onednn_ratio")
    if not isinstance(ratio, (int, float)) or tune.get("onednn_versus") != "off":
        return [
            Reason(
                "speed",
                "ok",
                "oneDNN is off (TensorFlow's default on this CPU): `envdoctor smoke-test --tune` measures whether "
                "TF_ENABLE_ONEDNN_OPTS=1 is faster here (about 3 minutes)",
            )
        ]
    measured = (
        f"`envdoctor smoke-test --tune` measured {ratio:.2f}x this model's images/s with TF_ENABLE_ONEDNN_OPTS=1 "
        f"on this CPU and TensorFlow ({tune.get('measured_at') or 'date unknown'}"
        + (", on a shared machine" if tune.get("unreliable") else "")
        + ")"
    )
    if ratio >= ONEDNN_WORTH:
        return [Reason("speed", "warn", f"oneDNN is off, and {measured}: export TF_ENABLE_ONEDNN_OPTS=1")]
    return [Reason("speed", "ok", f"oneDNN is off; {measured}: no gain worth changing it for")]


def _device_kind(result: dict[str, Any]) -> Literal["cpu", "gpu"]:
    return "gpu" if "GPU" in str(result.get("variable_device") or "").upper() else "cpu"


def tips(result: dict[str, Any]) -> str:
    """What usually explains a slow CPU here, in the order it matters on the machines measured."""
    runtime = result.get("runtime") or {}
    hints = []
    if _device_kind(result) == "cpu" and runtime.get("onednn") is False:
        hints.append("oneDNN is off (export TF_ENABLE_ONEDNN_OPTS=1)")
    hints.append("run `envdoctor smoke-test --tune` to measure the settings that matter here")
    return "; ".join(hints)


def calibration_trust(result: dict[str, Any]) -> list[Reason]:
    """A calibration that never settled, or that moved between before and after training, is a sign that the
    device's rate changed under the run (another process, thermal or power limits)."""
    rules = reference()["judge"]
    before, after = result.get("calibration") or {}, result.get("calibration_after") or {}
    reasons = []
    if before and not before.get("stable"):
        reasons.append(
            Reason(
                "calibration",
                "unreliable",
                f"the matmul calibration did not settle: its last products spread "
                f"{before['spread']:.0%} (stable means within 5%)",
            )
        )
    if before.get("gflops") and after.get("gflops"):
        drift = after["gflops"] / before["gflops"] - 1
        moved = (
            f"the device's matmul rate moved {drift:+.0%} between before training ({before['gflops']:.0f} GFLOP/s) "
            f"and after ({after['gflops']:.0f})"
        )
        # Slower after: something took the device during the run, the training's numbers with it. Faster after:
        # the first reading fell short (the faster one is the yardstick, train.yardstick); the training between
        # them is not in doubt, but the device's rate wanders by that much here.
        if -drift > rules["calibration_drift"]:
            reasons.append(Reason("calibration", "unreliable", moved))
        elif drift > rules["calibration_drift"]:
            reasons.append(Reason("calibration", "warn", f"{moved}; utilization is against the faster reading"))
    return reasons


# ---------------------------------------------------------------- contention and the headline


def contention(result: dict[str, Any]) -> list[Reason]:
    window = result.get("contention") or {}
    return [Reason("contention", "unreliable", f"numbers unreliable: {why}") for why in window.get("reasons", [])]


def judge(result: dict[str, Any]) -> tuple[Verdict, list[Reason]]:
    """Every reason, and the headline: failed > inconclusive > unreliable > warnings > ok."""
    reasons = [Reason("run", "fail", failure) for failure in result.get("failures", [])]
    if result.get("steps") and not result.get("nan_loss"):
        reasons.append(learning(result))
        reasons += speed(result)
    reasons += contention(result)
    worst = max((_SEVERITY[r.status] for r in reasons), default=(0, "ok"))
    return worst[1], reasons


def as_dicts(reasons: list[Reason]) -> list[dict[str, str]]:
    return [asdict(r) for r in reasons]

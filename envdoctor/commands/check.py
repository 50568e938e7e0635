"""`envdoctor check`: collect facts (or load a snapshot), diagnose, render, exit with the documented code."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from envdoctor.errors import UsageError

_FORMATS = ("--json", "--markdown")


# typer joins lines separated by a single newline: each example is its own paragraph.
EXAMPLES = """Examples:

envdoctor check

envdoctor check -v --strict

envdoctor check --json > report.json

envdoctor check --python ~/venvs/tf/bin/python"""


def register(app: typer.Typer) -> None:
    app.command("check", epilog=EXAMPLES)(check)


def check(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every finding with its evidence."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout (facts, findings, summary)."),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown for pasting into a GitHub issue."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    redact: bool = typer.Option(False, "--redact", help="Replace home dir, user, hostname and GPU UUIDs."),
    deep: bool = typer.Option(False, "--deep", help="Also import TensorFlow in a subprocess and read what it says."),
    root: Optional[Path] = typer.Option(
        None, "--root", metavar="DIR", help="Read files under DIR instead of /; run no commands, no NVML."
    ),
    python: Optional[Path] = typer.Option(
        None,
        "--python",
        metavar="PYTHON",
        help="Inspect another interpreter's packages (its path, or a venv/conda folder).",
    ),
    save: Optional[Path] = typer.Option(None, "--save", metavar="FILE", help="Write the facts snapshot to FILE."),
    from_file: Optional[Path] = typer.Option(
        None, "--from", metavar="FILE", help="Diagnose a snapshot saved with --save."
    ),
) -> None:
    """Diagnose this machine for TensorFlow: drivers, GPUs, CUDA, cuDNN, CPU, TensorFlow. Never imports TensorFlow.

    Exit codes: 0 no errors; 1 error findings (warnings too with --strict); 2 usage error; 3 internal failure.
    A reader that closes the output early (`| head`) does not change the code.
    """
    from envdoctor.doctor import diagnose

    if as_json and markdown:
        raise UsageError("--json and --markdown cannot be combined")
    if from_file and (root or python or deep):
        raise UsageError("--from diagnoses a saved snapshot; it cannot be combined with --root, --python or --deep")
    facts = load_snapshot(from_file) if from_file else _collect(root, python, deep)
    if python is not None and facts.tensorflow.error:  # it did not run, or is no Python: nothing to diagnose
        raise UsageError(
            f"--python {python} is not a working Python interpreter ({facts.tensorflow.error}); "
            "without --python, check diagnoses the rest of the machine"
        )
    diagnosis = diagnose(facts, strict=strict)
    scrub = _scrubber(facts) if redact else None
    if save:
        write_snapshot(save, facts, scrub)
    from envdoctor.report.console import reader_may_leave

    rerun = rerun_command(root=root, python=python, from_file=from_file, deep=deep)
    with reader_may_leave():  # `check | head -1`: the exit code stays the diagnosis'
        _render(diagnosis, as_json, markdown, verbose, scrub, rerun, from_file)
    raise typer.Exit(diagnosis.exit_code)


def _collect(root: Path | None, python: Path | None, deep: bool):
    from envdoctor.probes import ProbeContext, collect

    if root is not None and not root.is_dir():
        raise UsageError(f"--root {root}: not a directory")
    if python is not None:
        python = interpreter_in(python, root)
    # Under --root the inspected system's environment variables are unknown: this shell's would mislead.
    ctx = ProbeContext(root=root.resolve() if root else Path("/"), python=str(python) if python else None)
    if root:
        ctx.env = {}
    return collect(ctx, deep=deep)


# Where a venv (bin/) or a conda env (bin/, or python.exe at the top on Windows) keeps its interpreter.
_PREFIX_INTERPRETERS = ("bin/python3", "bin/python", "python.exe", "Scripts/python.exe")


def interpreter_in(python: Path, root: Path | None = None) -> Path:
    """The interpreter --python names: the file itself, or the one inside a venv or conda folder.

    Under --root the path is the inspected system's: it is looked up inside the root, and need not run here."""
    from envdoctor.probes.files import InspectedFS

    fs = InspectedFS(root or "/")
    path = str(python.expanduser()) if root is None else str(python)
    if root is not None and not path.startswith("/"):
        raise UsageError(f"--python {python}: under --root, give the interpreter's absolute path in the image")
    if fs.isdir(path):
        prefix = path.rstrip("/") or "/"
        found = next((f"{prefix}/{name}" for name in _PREFIX_INTERPRETERS if fs.isfile(f"{prefix}/{name}")), None)
        if found is None and root is not None and fs.isdir(f"{prefix}/lib"):
            found = f"{prefix}/bin/python"  # a captured tree may hold the packages without the interpreter
        if found is None:
            raise UsageError(f"--python {python}: a folder without bin/python3 (not a venv or conda environment)")
        return Path(found)
    if root is None and not (fs.isfile(path) and os.access(path, os.X_OK)):
        raise UsageError(f"--python {python}: not an executable file")
    return Path(path)


def _scrubber(facts):
    from envdoctor.report.redact import redactor

    return redactor(facts)


def rerun_command(
    root: Path | None = None, python: Path | None = None, from_file: Path | None = None, deep: bool = False
) -> str:
    """`envdoctor check` with the options that chose what was diagnosed, so that a printed hint repeats them."""
    import shlex

    words = ["envdoctor", "check"]
    for option, value in (("--root", root), ("--python", python), ("--from", from_file)):
        if value is not None:
            words += [option, shlex.quote(str(value))]
    return " ".join(words + (["--deep"] if deep else []))


def _render(
    diagnosis,
    as_json: bool,
    markdown: bool,
    verbose: bool,
    scrub,
    rerun: str = "envdoctor check",
    from_file: Path | None = None,
) -> None:
    if as_json:
        from envdoctor.report.jsonout import diagnosis_dict, dumps
        from envdoctor.report.redact import redact_tree

        document = diagnosis_dict(diagnosis)
        sys.stdout.write(dumps(redact_tree(document, scrub) if scrub else document) + "\n")
    elif markdown:
        from envdoctor.report.human import snapshot_origin
        from envdoctor.report.markdown import render

        text = render(diagnosis, snapshot_origin(diagnosis.facts, str(from_file)) if from_file else None)
        sys.stdout.write((scrub(text) if scrub else text) + "\n")
    else:
        from envdoctor.report.human import render as render_human
        from envdoctor.report.human import snapshot_origin

        origin = snapshot_origin(diagnosis.facts, str(from_file)) if from_file else None
        render_human(diagnosis, verbose=verbose, scrub=scrub, rerun=rerun, origin=origin)


def write_snapshot(path: Path, facts, scrub=None) -> None:
    """Write the facts as JSON atomically: a temp file in the same folder, renamed when complete."""
    from envdoctor import atomic
    from envdoctor.facts import to_dict
    from envdoctor.report.jsonout import dumps
    from envdoctor.report.redact import redact_tree

    document: Any = to_dict(facts)
    if scrub:
        document = redact_tree(document, scrub)
    path = path.expanduser()
    if path.is_dir():
        raise UsageError(f"--save {path}: is a directory")
    try:
        atomic.write_text(path, dumps(document) + "\n")
    except OSError as exc:
        raise UsageError(f"--save {path}: {exc.strerror or exc}") from None


def load_snapshot(path: Path):
    """Facts from a --save snapshot, or from a whole `check --json` document."""
    from envdoctor.facts import SCHEMA_VERSION, Facts, from_dict
    from envdoctor.jsonload import load_json_input

    data = load_json_input(path, "--from")
    if isinstance(data, dict) and isinstance(data.get("facts"), dict):
        data = data["facts"]
    if not isinstance(data, dict) or "system" not in data:
        raise UsageError(f"--from {path}: not an envdoctor facts snapshot")
    schema = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(schema, int):
        raise UsageError(f"--from {path}: schema_version {schema!r} is not a number")
    if schema > SCHEMA_VERSION:
        raise UsageError(
            f"--from {path}: schema_version {data['schema_version']} is newer than this envdoctor "
            f"understands ({SCHEMA_VERSION}); upgrade envdoctor"
        )
    try:
        return from_dict(Facts, data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"--from {path}: malformed snapshot ({exc})") from None

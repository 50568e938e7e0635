"""Write the recipe directory from templates/build_tf/*.j2, all or nothing.

Everything is rendered in memory first. A new directory is assembled beside the target and renamed into
place; with --force into an existing directory, each generated file is replaced atomically and the rest
(the checkout, wheels/, build.log) is kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from envdoctor import __version__, atomic
from envdoctor.buildtf.plan import BuildPlan, estimate_text, table
from envdoctor.errors import UsageError
from envdoctor.resources import load_recipe, templates_dir

STAGES = ("prereqs", "fetch", "configure", "build", "collect", "install", "verify")
EXECUTABLE = {"build.sh"}
GENERATED = ("build.sh", "tf_configure.bazelrc", "README.md", "Dockerfile", "plan.json")


def render_files(plan: BuildPlan) -> dict[str, str]:
    """File name -> content for this plan."""
    import jinja2  # heavy: only build-tf needs it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "build_tf")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        # bash's ${#array[@]} would open a Jinja comment: comments get delimiters bash never uses.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters["q"] = shell_quote
    dists = load_recipe("python_packages.json")
    context = {
        "p": plan,
        "version": __version__,
        "stages": STAGES,
        "default_stages": default_stages(plan),
        "tf_distributions": dists["tensorflow_distributions"],
        "tf_prefixes": dists["tensorflow_prefixes"],
        "repo": table()["repository"],
        "hints": plan.install_hints,
        "src_default": _src_default(plan),
        "ram_gb_wanted": _ram_wanted(plan),
        "estimate": estimate_text(plan),
    }
    names = ["build.sh", "tf_configure.bazelrc", "README.md"] + (["Dockerfile"] if plan.docker else [])
    files = {name: env.get_template(f"{name}.j2").render(context) for name in names}
    files["README.md"] = re.sub(r"\n{3,}", "\n\n", files["README.md"])  # optional sections leave gaps
    files["plan.json"] = json.dumps(dataclasses.asdict(plan), indent=2) + "\n"
    return files


def default_stages(plan: BuildPlan) -> tuple[str, ...]:
    """What a bare ./build.sh runs: with --from the wheel is for another CPU, so install and verify run there."""
    return STAGES[:STAGES.index("install")] if plan.other_machine else STAGES


def shell_quote(value: object) -> str:
    """Always single-quoted (shlex.quote leaves a/b-c bare, which shellcheck reads as arithmetic)."""
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def _src_default(plan: BuildPlan) -> str:
    """The checkout path for build.sh: relative to the recipe when inside it, so the folder can move."""
    src, out = Path(plan.src_dir), Path(plan.out_dir)
    if src.is_relative_to(out):
        return '"$HERE"/' + shell_quote(src.relative_to(out))
    return shell_quote(src)


def _ram_wanted(plan: BuildPlan) -> int:
    res = table()["resources"]
    return int(plan.jobs * res["gb_per_job"] + res["gb_reserved"])


def check_out(out: Path, force: bool) -> None:
    """Refuse an --out that write_recipe would refuse, before anything is printed or written."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to regenerate the recipe there (the checkout is kept)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    if out.is_dir() and not (out / "plan.json").is_file() and any(out.iterdir()):
        # --force replaces README.md and removes Dockerfile: only in a folder envdoctor wrote.
        raise UsageError(f"{out} is not empty and is not an envdoctor build-tf recipe (no plan.json): "
                         "choose another --out")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"cannot create {out}: {parent} is not a directory")


def write_recipe(plan: BuildPlan, force: bool = False) -> list[Path]:
    """Write the recipe to plan.out_dir; refuses an existing directory without force."""
    out = Path(plan.out_dir)
    check_out(out, force)
    files = render_files(plan)
    try:
        _write_files(out, files)
    except OSError as exc:  # an unwritable or odd --out: one line; nothing half-written stays behind
        raise UsageError(f"cannot write the recipe to {out}: {exc.strerror or exc}") from None
    return [out / name for name in files]


def _write_files(out: Path, files: dict[str, str]) -> None:
    if out.exists():
        for name, text in files.items():
            _replace_file(out / name, text)
        for stale in set(GENERATED) - set(files):  # e.g. a Dockerfile from an earlier --docker
            (out / stale).unlink(missing_ok=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for name, text in files.items():
                _write(tmp / name, text)
            tmp.chmod(0o755)
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(_mode(path))


def _mode(path: Path) -> int:
    return 0o755 if path.name in EXECUTABLE else 0o644


def _replace_file(path: Path, text: str) -> None:
    atomic.write_text(path, text, _mode(path))

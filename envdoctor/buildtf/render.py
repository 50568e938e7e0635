"""Write the recipe directory from templates/build_tf/*.j2, all or nothing.

Everything is rendered and checked in memory first. A new directory is assembled beside the target and
renamed into place. With --force into an existing directory, it must be a recipe envdoctor wrote: plan.json
carries a marker (generator, schema) and the name and SHA-256 of every file written with it. Only those files
are replaced, each atomically; the rest (the checkout, wheels/, build.log, anything of the user's) is kept.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from envdoctor import __version__, atomic
from envdoctor.buildtf.plan import BuildPlan, estimate_text, stock_wheel_flags, table
from envdoctor.buildtf.safety import check_plan, check_token, md_code, md_fence, md_text
from envdoctor.errors import UsageError
from envdoctor.resources import load_recipe, templates_dir

if TYPE_CHECKING:
    import jinja2

STAGES = ("prereqs", "fetch", "configure", "build", "collect", "install", "verify")
EXECUTABLE = {"build.sh"}
GENERATED = ("build.sh", "tf_configure.bazelrc", "README.md", "Dockerfile", "plan.json")
MARKER = {"generator": "envdoctor build-tf", "schema": 1}
_MARKER_MAX_BYTES = 1 << 20  # a plan.json is a few KB: a bigger one is not envdoctor's


def render_files(plan: BuildPlan) -> dict[str, str]:
    """File name -> content for this plan; plan.json last, as it records the others."""
    check_plan(plan)
    env = _environment()
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
        "stock_flags": stock_wheel_flags(plan.era),
    }
    names = ["build.sh", "tf_configure.bazelrc", "README.md"] + (["Dockerfile"] if plan.docker else [])
    files = {name: env.get_template(f"{name}.j2").render(context) for name in names}
    files["README.md"] = re.sub(r"\n{3,}", "\n\n", files["README.md"])  # optional sections leave gaps
    files["plan.json"] = plan_json(plan, files)
    return files


def plan_json(plan: BuildPlan, files: dict[str, str]) -> str:
    """The plan, with the marker --force looks for and what was written with it."""
    written = {name: _sha256(text) for name, text in files.items() if name != "plan.json"}
    return json.dumps({**MARKER, "written": written, **dataclasses.asdict(plan)}, indent=2) + "\n"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recorded_files(out: Path) -> dict[str, str] | None:
    """{file name: SHA-256} that envdoctor wrote into `out`, from its plan.json; None if `out` is not its recipe."""
    data = _read_plan_json(out / "plan.json")
    if not isinstance(data, dict) or any(
        data.get(k) != v or type(data.get(k)) is not type(v) for k, v in MARKER.items()
    ):
        return None
    written = data.get("written")
    if not isinstance(written, dict):
        return None
    ok = all(name in GENERATED and name != "plan.json" and isinstance(digest, str) for name, digest in written.items())
    return dict(written) if ok else None


def _read_plan_json(path: Path) -> object:
    """plan.json's content, or None: never through a symlink, never a FIFO or device, never a huge file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        raw = fh.read(_MARKER_MAX_BYTES + 1)
    if len(raw) > _MARKER_MAX_BYTES:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """One Jinja environment per process: compiling the templates costs more than rendering them."""
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
    env.filters["sh"] = shlex.quote  # README's copy-paste lines: quoted only where needed, so they stay readable
    env.filters["md"] = md_text
    env.filters["code"] = md_code
    env.filters["code_cell"] = lambda value: md_code(value, in_table=True)
    env.filters["fence"] = md_fence
    return env


def default_stages(plan: BuildPlan) -> tuple[str, ...]:
    """What a bare ./build.sh runs: with --from the wheel is for another CPU, so install and verify run there."""
    return STAGES[: STAGES.index("install")] if plan.other_machine else STAGES


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
    check_token("--out", str(out))  # first: the messages below name it
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to regenerate the recipe there (the checkout is kept)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    if out.is_dir() and recorded_files(out) is None and any(out.iterdir()):
        # --force replaces README.md and build.sh: only in a folder envdoctor wrote.
        raise UsageError(
            f"{out} is not empty and is not an envdoctor build-tf recipe (no plan.json with "
            "envdoctor's marker): choose another --out"
        )
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"cannot create {out}: {parent} is not a directory")


def write_recipe(plan: BuildPlan, force: bool = False) -> list[Path]:
    """Write the recipe to plan.out_dir; refuses an existing directory without force."""
    out = Path(plan.out_dir)
    check_out(out, force)
    files = render_files(plan)
    recorded = recorded_files(out) or {}
    if out.is_dir():
        _check_replaceable(out, files, recorded)
    try:
        _write_files(out, files, recorded)
    except OSError as exc:  # an unwritable or odd --out: one line; nothing half-written stays behind
        raise UsageError(f"cannot write the recipe to {out}: {exc.strerror or exc}") from None
    return [out / name for name in files]


def _check_replaceable(out: Path, files: dict[str, str], recorded: dict[str, str]) -> None:
    """Before writing anything: each file about to be replaced is a regular file envdoctor wrote."""
    for name in files:
        path = out / name
        if not os.path.lexists(path):
            continue
        if name != "plan.json" and name not in recorded:
            raise UsageError(
                f"{path} was not written by envdoctor (its plan.json does not list it): "
                "move it away, or choose another --out"
            )
        if not stat.S_ISREG(path.lstat().st_mode):
            raise UsageError(f"{path} is not a regular file: move it away, or choose another --out")


def _write_files(out: Path, files: dict[str, str], recorded: dict[str, str]) -> None:
    if out.exists():
        _update_files(out, files, recorded)
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


def _update_files(out: Path, files: dict[str, str], recorded: dict[str, str]) -> None:
    """Replace the recipe's files in place (plan.json last: it lists the others), then drop the stale ones."""
    created: list[Path] = []
    try:
        for name, text in files.items():
            path = out / name
            if not os.path.lexists(path):
                created.append(path)
            _replace_file(path, text)
    except BaseException:
        for path in created:  # files this run added: the old plan.json does not list them
            path.unlink(missing_ok=True)
        raise
    for name in set(recorded) - set(files):  # e.g. a Dockerfile from an earlier --docker
        _remove_if_unchanged(out / name, recorded[name])


def _remove_if_unchanged(path: Path, digest: str) -> None:
    """Delete a file envdoctor wrote, unless it has been edited since: then it is the user's and stays."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode) or _sha256_file(path) != digest:
            return
        path.unlink()
    except FileNotFoundError:
        return


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):  # the user may have put anything there: bounded memory
            digest.update(chunk)
    return digest.hexdigest()


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(_mode(path))


def _mode(path: Path) -> int:
    return 0o755 if path.name in EXECUTABLE else 0o644


def _replace_file(path: Path, text: str) -> None:
    atomic.write_text(path, text, _mode(path))

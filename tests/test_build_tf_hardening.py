"""build-tf against hostile input: a `--from` snapshot (someone else's file) and odd paths on the command line.

Every string of a real snapshot (tests/fixtures/h100-firecracker) is mutated in turn with a payload of line
breaks, quotes, `$()`, backticks, `${}`, Markdown and bazelrc syntax. Each mutation is either refused with
one line (exit 2) or rendered into files whose structure is the unmutated snapshot's: the same lines, the same
bazelrc words (parsed by the rules of Bazel's rc_file.cc), the payload only inside build.sh's single quotes,
the same Markdown tree. Also: --force only in envdoctor's own recipe, and --python paths with spaces.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from envdoctor.buildtf import plan as planmod
from envdoctor.buildtf.plan import BuildOptions, make_plan, resolve_python
from envdoctor.buildtf.render import render_files, write_recipe
from envdoctor.commands.check import load_snapshot
from envdoctor.errors import UsageError
from envdoctor.facts import Facts, from_dict

REPO = Path(__file__).parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "h100-firecracker" / "envdoctor" / "facts.json"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
TF = "2.17"  # local CUDA: the snapshot's toolkit and cuDNN paths reach tf_configure.bazelrc and build.sh
MARK = "PWNED"
# A line break, every quote, command substitution, ${} (Bazel expands it), a comment, Markdown and HTML.
LINE = (
    f"\nbuild --workspace_status_command=/tmp/{MARK}\n\"'$(touch {MARK})`touch {MARK}`${{HOME}}\\\r\u2028"
    f"# [x](http://{MARK}) <img src=x onerror={MARK}> | ``` "
)
# The same without what no file can hold (line breaks, ${}, a comma): this must be escaped, not refused.
INLINE = f"\"'$(touch {MARK})`touch {MARK}`\\ # [x](http://{MARK}) <b>{MARK}</b> | ``` ;&&"
# Fields whose value must parse (an architecture, a compute capability): any payload is refused there.
STRICT = {("cpu", "arch"), ("gpus", 0, "compute_capability")}


# --- the hostile snapshots ------------------------------------------------------------------------------


def base_snapshot() -> dict[str, Any]:
    """The real capture, with CUDA/cuDNN versions of TF 2.17's so its paths are used (not a default)."""
    data = json.loads(FIXTURE.read_text())
    era = planmod.table()["releases"][TF]
    data["cuda"]["toolkits"][0]["version"] = f"{era['cuda']}.2"
    for entry in data["cuda"]["cudnn"]:
        entry["version"] = f"{era['cudnn']}.7"
    return data


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every string in a JSON document."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*path, index))


def mutated(data: dict[str, Any], paths: list[tuple[Any, ...]], payload: str) -> dict[str, Any]:
    """A copy with `payload` appended to the strings at `paths` (appended: prefixes such as versions still match)."""
    doc = copy.deepcopy(data)
    for path in paths:
        *parents, last = path
        node = doc
        for key in parents:
            node = node[key]
        node[last] += payload
    return doc


def closed_set_paths(data: dict[str, Any]) -> set[tuple[Any, ...]]:
    """Strings of a closed set (a Literal fact, e.g. the package manager): the snapshot loader refuses any other
    value, so no payload in them reaches build-tf (tested in test_closed_set_values_never_reach_build_tf)."""
    closed = set()
    for path in string_paths(data):
        try:
            from_dict(Facts, mutated(data, [path], CONTROL))
        except TypeError:
            closed.add(path)
    return closed


def open_string_paths(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    closed = closed_set_paths(data)
    return [p for p in string_paths(data) if p not in closed]


def mutation_groups(data: dict[str, Any]) -> list[list[tuple[Any, ...]]]:
    """Each string on its own; the CPU's feature lists (only ever looked up) as one group each."""
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for path in open_string_paths(data):
        key = path[:2] if path[:2] in {("cpu", "flags"), ("cpu", "features")} else path
        groups.setdefault(key, []).append(path)
    return list(groups.values())


def render_snapshot(doc: dict[str, Any], tmp: Path) -> dict[str, str]:
    """Load through the real `--from` reader and plan for the other machine, as `build-tf --from` does."""
    snap = tmp / "snapshot.json"
    snap.write_text(json.dumps(doc))
    facts = load_snapshot(snap)
    opts = BuildOptions(
        tf_version=TF, out=tmp / "recipe", python=PY, skip_flag_check=True, other_machine=True, docker=True
    )
    return render_files(make_plan(facts, opts))


# --- how each file's own parser reads it ------------------------------------------------------------------


def bazelrc_words(text: str) -> list[list[str]]:
    """tf_configure.bazelrc as Bazel reads it (src/main/cpp/rc_file.cc and util/strings.cc's Tokenize)."""
    text = text.replace("\\\r\n", "").replace("\\\n", "")
    lines = []
    for line in text.split("\n"):
        line = line.strip(" \t\n\v\f\r")
        assert "${" not in line, line  # Bazel would substitute the environment here
        words = _rc_tokens(line)
        if words:
            lines.append(words)
    return lines


def _rc_tokens(line: str) -> list[str]:
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \n\t\r":
            i += 1
        if i < n and line[i] == "#":
            break
        word, quote = "", ""
        while i < n and (quote or line[i] not in " \n\t\r"):
            c = line[i]
            i += 1
            if c == "\\":
                if i < n:
                    word += line[i]
                    i += 1
            elif quote:
                quote, word = ("", word) if c == quote else (quote, word + c)
            elif c == "#":
                i = n
            elif c in "'\"":
                quote = c
            else:
                word += c
        if word:
            words.append(word)
    return words


def rc_shape(text: str) -> list[tuple[str, list[str]]]:
    """Each line's command and option names: a payload may change values, never add a line, word or option."""
    return [(words[0], [w.split("=")[0] for w in words[1:]]) for words in bazelrc_words(text)]


_SH_OUTSIDE = re.compile(r"""'[^']*'?|\\.|"|#|[^'"\\#]+""", re.S)
_SH_IN_DOUBLE = re.compile(r"""\\.|"|[^"\\]+""", re.S)


def shell_exposed(script: str) -> str:
    """build.sh's text outside single quotes and comments: where the shell expands $(), `` and ${}."""
    out: list[str] = []
    pos, double = 0, False
    while pos < len(script):
        tok = (_SH_IN_DOUBLE if double else _SH_OUTSIDE).match(script, pos).group()  # type: ignore[union-attr]
        pos += len(tok)
        if tok == '"':
            double = not double
        elif not double and tok.startswith("'"):
            tok = "''"  # single-quoted: nothing in it is expanded
        elif not double and tok == "#" and (not out or out[-1][-1:] in ("", " ", "\t", "\n", ";", "&", "|", "(")):
            end = script.find("\n", pos)
            pos, tok = (len(script) if end < 0 else end), ""  # a comment, up to the line's end
        out.append(tok)
    return "".join(out)


_MARKDOWN = MarkdownIt("commonmark").enable("table")


def md_shape(text: str) -> list[tuple[str, ...]]:
    """README.md's CommonMark+table tree, without the text itself: no new block, link, HTML or code span."""
    shape: list[tuple[str, ...]] = []
    for tok in _MARKDOWN.parse(text):
        shape.append((tok.type, tok.tag, tok.info))
        shape += [(child.type, child.tag) for child in tok.children or [] if child.type not in ("text", "text_special")]
    return shape


# --- the checks --------------------------------------------------------------------------------------------


def structure(files: dict[str, str]) -> tuple[Any, ...]:
    """What no value may change: each file's lines (str.splitlines also splits at \\r, \\v, \\x85, U+2028...),
    bazelrc lines and words, build.sh's unquoted lines, the Markdown tree, the Dockerfile."""
    return _structure(tuple(sorted(files.items())))


@functools.lru_cache(maxsize=4)  # each render is compared, then checked: parse it once
def _structure(items: tuple[tuple[str, str], ...]) -> tuple[Any, ...]:
    files = dict(items)
    lines = {name: len(text.splitlines()) for name, text in files.items() if name != "plan.json"}
    return (
        lines,
        rc_shape(files["tf_configure.bazelrc"]),
        shell_exposed(files["build.sh"]).count("\n"),
        md_shape(files["README.md"]),
        files.get("Dockerfile"),
    )


def assert_safe(files: dict[str, str], like: tuple[Any, ...]) -> None:
    """`files` has the structure `like` (of the unmutated render, or of one with a harmless payload)."""
    assert structure(files) == like
    assert MARK not in shell_exposed(files["build.sh"])
    data = json.loads(files["plan.json"])
    assert data["generator"] == "envdoctor build-tf" and data["schema"] == 1


def assert_one_line_refusal(exc: UsageError) -> None:
    text = str(exc)
    assert text and len(text.splitlines()) == 1 and text.isprintable(), text


def bash_ok(scripts: list[str], tmp: Path) -> None:
    """bash -n on each distinct build.sh, and shellcheck (as CI does) when it is installed."""
    paths = []
    for i, script in enumerate(dict.fromkeys(scripts)):
        path = tmp / f"build-{i}.sh"
        path.write_text(script)
        paths.append(str(path))
        res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
    if paths and shutil.which("shellcheck"):
        # SC2016 ("expressions don't expand in single quotes") is the point here: the payload's $() stays inert.
        res = subprocess.run(
            ["shellcheck", "--severity=style", "--exclude=SC2016", *paths], capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, res.stdout


# --- point 3: a hostile --from snapshot -------------------------------------------------------------------


# Appended to the same strings, a harmless payload: a value that no longer matches a table (a CPU flag, a package
# manager) changes the plan the same way, so the hostile render is compared with this one.
CONTROL = f"_{MARK.lower()}"


def render_or_refuse(doc: dict[str, Any], tmp: Path) -> dict[str, str] | None:
    try:
        return render_snapshot(doc, tmp)
    except UsageError as exc:
        assert_one_line_refusal(exc)
        return None


@pytest.mark.parametrize("payload", [LINE, INLINE], ids=["line-breaks", "inline"])
def test_every_snapshot_string_is_refused_or_escaped(payload: str, tmp_path: Path) -> None:
    data = base_snapshot()
    base = render_snapshot(data, tmp_path)
    base_structure = structure(base)
    rendered: dict[tuple[Any, ...], dict[str, str]] = {}
    refused: set[tuple[Any, ...]] = set()
    for group in mutation_groups(data):
        files = render_or_refuse(mutated(data, group, payload), tmp_path)
        if files is None:
            refused.add(group[0])
            continue
        like = base_structure
        if structure(files) != like:  # e.g. no CPU flag matches any more: compare with the control
            control = render_or_refuse(mutated(data, group, CONTROL), tmp_path)
            assert control is not None, group
            like = structure(control)
        assert_safe(files, like)
        rendered[group[0]] = files
    toolkit, model, gpu = ("cuda", "toolkits", 0, "path"), ("cpu", "model"), ("gpus", 0, "name")
    assert refused >= STRICT
    assert model in rendered and gpu in rendered  # free text is flattened and escaped, not refused
    assert MARK in rendered[model]["README.md"] and MARK in rendered[gpu]["README.md"]
    if payload == LINE:
        assert refused == STRICT | {toolkit, *(("cuda", "cudnn", i, "path") for i in range(3))}
    else:
        assert refused == STRICT
        # Escaped, not mangled: Bazel reads back the exact path, and so does the shell.
        words = {
            w.split("=", 1)[0]: w.split("=", 1)[1]
            for line in bazelrc_words(rendered[toolkit]["tf_configure.bazelrc"])
            for w in line[1:]
            if "=" in w
        }
        assert words["TF_CUDA_PATHS"].split(",")[0] == "/usr/local/cuda-13.0" + INLINE
        assert MARK in rendered[toolkit]["build.sh"] and MARK in rendered[toolkit]["README.md"]
    assert not (tmp_path / "recipe").exists()
    bash_ok([files["build.sh"] for files in rendered.values() if MARK in files["build.sh"]], tmp_path)


def test_all_strings_at_once(tmp_path: Path) -> None:
    data = base_snapshot()
    paths = [p for p in open_string_paths(data) if p not in STRICT]
    files = render_snapshot(mutated(data, paths, INLINE), tmp_path)
    assert_safe(files, structure(render_snapshot(mutated(data, paths, CONTROL), tmp_path)))
    bash_ok([files["build.sh"]], tmp_path)
    with pytest.raises(UsageError) as exc:
        render_snapshot(mutated(data, paths, LINE), tmp_path)
    assert_one_line_refusal(exc.value)


def test_closed_set_values_never_reach_build_tf(tmp_path: Path) -> None:
    data = base_snapshot()
    closed = closed_set_paths(data)
    assert ("system", "package_manager") in closed
    for path in closed:
        snap = tmp_path / "closed.json"
        snap.write_text(json.dumps(mutated(data, [path], LINE)))
        with pytest.raises(UsageError, match="malformed snapshot") as exc:
            load_snapshot(snap)
        assert_one_line_refusal(exc.value)


def test_cli_refuses_a_snapshot_that_injects_a_bazelrc_line(tmp_path: Path) -> None:
    data = base_snapshot()
    data["cuda"]["toolkits"][0]["path"] += f"\nbuild --workspace_status_command=/tmp/{MARK}"
    snap = tmp_path / "hostile.json"
    snap.write_text(json.dumps(data))
    out = tmp_path / "recipe"
    res = run_cli("--from", str(snap), "--out", str(out), "--tf-version", TF, "--python", PY, "--skip-flag-check")
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.startswith("envdoctor: error: the CUDA path") and res.stderr.count("\n") == 1
    assert not out.exists()


def test_cli_escapes_a_snapshot_with_quotes_everywhere(tmp_path: Path) -> None:
    data = base_snapshot()
    paths = [p for p in open_string_paths(data) if p not in STRICT]
    doc = mutated(data, paths, INLINE)
    snap = tmp_path / "hostile.json"
    snap.write_text(json.dumps(doc))
    out = tmp_path / "recipe"
    res = run_cli(
        "--from", str(snap), "--out", str(out), "--tf-version", TF, "--python", PY, "--skip-flag-check", "--docker"
    )
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout  # no terminal escape: stdout is not a terminal here
    files = {p.name: p.read_text() for p in out.iterdir()}
    control = render_snapshot(mutated(data, paths, CONTROL), tmp_path)
    assert rc_shape(files["tf_configure.bazelrc"]) == rc_shape(control["tf_configure.bazelrc"])
    assert md_shape(files["README.md"]) == md_shape(control["README.md"])
    bash_ok([files["build.sh"]], tmp_path)


@pytest.mark.parametrize("option", ["--clang", "--venv", "--src"])
def test_command_line_paths_are_escaped_or_refused(option: str, tmp_path: Path) -> None:
    odd = options_in(option, tmp_path / f"d{INLINE.replace(' ', '').replace('/', '')}")  # no space: see --src
    files, control = (render_files(make_plan(load_facts(), o)) for o in (odd, options_in(option, tmp_path / "p")))
    assert MARK not in shell_exposed(files["build.sh"]) and MARK in files["build.sh"]
    assert structure(files) == structure(control)
    bash_ok([files["build.sh"]], tmp_path)
    value = getattr(odd, option[2:])
    broken = f"{value}\nbuild --x" if option == "--clang" else Path(f"{value}\n#")
    with pytest.raises(UsageError) as exc:  # a line break fits no generated file
        make_plan(load_facts(), dataclasses.replace(odd, **{option[2:]: broken}))
    assert_one_line_refusal(exc.value)


def options_in(option: str, folder: Path) -> BuildOptions:
    """Options whose --clang, --venv or --src (and --out) lie in `folder`."""
    folder.mkdir()
    clang = folder / "clang"
    clang.write_text("#!/bin/sh\nexit 0\n")
    clang.chmod(0o755)
    value = {"--clang": str(clang), "--venv": folder / "venv", "--src": folder / "tf"}[option]
    return BuildOptions(tf_version=TF, out=folder / "r", python=PY, skip_flag_check=True, **{option[2:]: value})


def test_bazel_env_expansion_is_refused(tmp_path: Path) -> None:
    clang = tmp_path / "${HOME}" / "clang"
    clang.parent.mkdir()
    clang.write_text("#!/bin/sh\n")
    clang.chmod(0o755)
    with pytest.raises(UsageError, match=r"contains '\$\{', which Bazel expands"):
        make_plan(
            load_facts(),
            BuildOptions(tf_version=TF, out=tmp_path / "r", python=PY, skip_flag_check=True, clang=str(clang)),
        )


def test_cpu_name_and_versions_must_be_whole_matches(tmp_path: Path) -> None:
    # `$` in a regex lets a trailing newline through: it would end build.sh's header comment.
    for kw in (
        {"cpu": "skylake\n"},
        {"python": "3.12\n"},
        {"cuda_cc": "9.0x"},
        {"tf_version": "２.１７"},
        {"cuda_cc": "9" * 5000},
        {"cpu": "a" * 5000},
    ):
        with pytest.raises(UsageError) as exc:
            make_plan(load_facts(), BuildOptions(out=tmp_path / "r", **{"python": PY, "skip_flag_check": True, **kw}))
        assert_one_line_refusal(exc.value)


def test_configure_stage_refuses_a_python_bazel_would_misread(tmp_path: Path) -> None:
    files = render_files(
        make_plan(load_facts(), BuildOptions(tf_version=TF, out=tmp_path / "r", python=PY, skip_flag_check=True))
    )
    (tmp_path / "build.sh").write_text(files["build.sh"])
    (tmp_path / "tf_configure.bazelrc").write_text(files["tf_configure.bazelrc"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "configure.py").write_text("")
    for python in ["/usr/bin/python3\nbuild --workspace_status_command=/bin/true", "/opt/${HOME}/python3"]:
        res = subprocess.run(
            ["bash", str(tmp_path / "build.sh"), "configure"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "SRC_DIR": str(src), "PYTHON": python},
        )
        assert res.returncode == 1 and "cannot go into .tf_configure.bazelrc" in res.stderr, res.stderr
        assert not (src / ".tf_configure.bazelrc").exists()


# --- point 6: --force only in envdoctor's own recipe, only its own files -----------------------------------


def test_force_refuses_a_foreign_plan_json(tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    foreign = {"plan.json": '{"tf_version": "2.20", "jobs": 4}\n', "README.md": "mine\n", "Dockerfile": "FROM x\n"}
    for name, text in foreign.items():
        (out / name).write_text(text)
    with pytest.raises(UsageError, match="not an envdoctor build-tf recipe"):
        write_recipe(make_plan(load_facts(), opts_for(out)), force=True)
    assert {p.name: p.read_text() for p in out.iterdir()} == foreign


def test_force_refuses_a_marker_it_did_not_write_itself(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_recipe(make_plan(load_facts(), opts_for(real)))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "README.md").write_text("mine\n")
    (linked / "plan.json").symlink_to(real / "plan.json")  # a marker through a link is not this folder's
    with pytest.raises(UsageError, match="not an envdoctor build-tf recipe"):
        write_recipe(make_plan(load_facts(), opts_for(linked)), force=True)
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "plan.json")  # read without blocking, and refused
    with pytest.raises(UsageError, match="not an envdoctor build-tf recipe"):
        write_recipe(make_plan(load_facts(), opts_for(fifo)), force=True)
    assert (linked / "README.md").read_text() == "mine\n"


def test_force_never_replaces_or_deletes_a_file_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "recipe"
    write_recipe(make_plan(load_facts(), opts_for(out)))  # no --docker: no Dockerfile recorded
    (out / "Dockerfile").write_text("FROM mine\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UsageError, match="Dockerfile was not written by envdoctor"):
        write_recipe(make_plan(load_facts(), opts_for(out, docker=True)), force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # checked before anything was written
    write_recipe(make_plan(load_facts(), opts_for(out, jobs=3)), force=True)  # a regeneration leaves it alone
    assert (out / "Dockerfile").read_text() == "FROM mine\n" and "--jobs=3" in (out / "build.sh").read_text()


def test_force_keeps_a_generated_file_the_user_edited(tmp_path: Path) -> None:
    out = tmp_path / "recipe"
    write_recipe(make_plan(load_facts(), opts_for(out, docker=True)))
    written = json.loads((out / "plan.json").read_text())["written"]
    assert set(written) == {"build.sh", "tf_configure.bazelrc", "README.md", "Dockerfile"}
    with (out / "Dockerfile").open("a") as fh:
        fh.write("RUN echo my change\n")
    write_recipe(make_plan(load_facts(), opts_for(out)), force=True)  # without --docker
    assert (out / "Dockerfile").read_text().endswith("RUN echo my change\n")  # edited: the user's now
    assert "Dockerfile" not in json.loads((out / "plan.json").read_text())["written"]
    write_recipe(make_plan(load_facts(), opts_for(out)), force=True)
    assert (out / "Dockerfile").exists()


def test_force_refuses_a_generated_name_that_is_a_link(tmp_path: Path) -> None:
    out = tmp_path / "recipe"
    write_recipe(make_plan(load_facts(), opts_for(out)))
    precious = tmp_path / "precious.txt"
    precious.write_text("keep\n")
    (out / "README.md").unlink()
    (out / "README.md").symlink_to(precious)
    build = (out / "build.sh").read_bytes()
    with pytest.raises(UsageError, match="README.md is not a regular file"):
        write_recipe(make_plan(load_facts(), opts_for(out, jobs=3)), force=True)
    assert precious.read_text() == "keep\n" and (out / "README.md").is_symlink()
    assert (out / "build.sh").read_bytes() == build


def test_cli_force_into_a_foreign_folder_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "plan.json").write_text("{}\n")
    (out / "build.sh").write_text("#!/bin/sh\necho mine\n")
    res = run_cli("--from", str(FIXTURE), "--out", str(out), "--python", PY, "--skip-flag-check", "--force")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not an envdoctor build-tf recipe" in res.stderr
    assert (out / "build.sh").read_text() == "#!/bin/sh\necho mine\n"


# --- point 13: --python with a space in its path -----------------------------------------------------------


def test_python_path_with_spaces_is_kept_whole(tmp_path: Path) -> None:
    link = tmp_path / "with space" / "python3"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    assert resolve_python(str(link), None) == (str(link), PY)
    plan = make_plan(
        load_facts(), BuildOptions(tf_version=TF, out=tmp_path / "r", python=str(link), skip_flag_check=True)
    )
    files = render_files(plan)
    assert plan.python_bin == str(link)
    rc = bazelrc_words(files["tf_configure.bazelrc"])
    assert ["build", "--action_env", f"PYTHON_BIN_PATH={link}"] in rc and ["build", f"--python_path={link}"] in rc
    assert f"DEFAULT_PYTHON='{link}'" in files["build.sh"]
    res = run_cli(
        "--from",
        str(FIXTURE),
        "--out",
        str(tmp_path / "cli"),
        "--python",
        str(link),
        "--tf-version",
        TF,
        "--skip-flag-check",
        "--dry-run",
    )
    assert res.returncode == 0 and f"({link})" in res.stdout, res.stderr


def test_python_that_does_not_report_itself_is_refused(tmp_path: Path) -> None:
    liar = tmp_path / "python3"
    liar.write_text("#!/bin/sh\necho 3.12 /usr/bin/python3\n")
    liar.chmod(0o755)
    with pytest.raises(UsageError, match="did not report its version and path") as exc:
        resolve_python(str(liar), None)
    assert_one_line_refusal(exc.value)
    quoted = tmp_path / 'a"b' / "python3"
    quoted.parent.mkdir()
    quoted.symlink_to(sys.executable)
    with pytest.raises(UsageError, match="quote or backslash"):
        resolve_python(str(quoted), None)


# --- helpers -----------------------------------------------------------------------------------------------


def load_facts() -> Any:
    return load_snapshot(FIXTURE)


def opts_for(out: Path, **kw: Any) -> BuildOptions:
    base: dict[str, Any] = {"tf_version": "2.20", "out": out, "python": PY, "skip_flag_check": True}
    return BuildOptions(**{**base, **kw})


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", "build-tf", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )

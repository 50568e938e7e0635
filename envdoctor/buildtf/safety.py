"""Values in build-tf's generated files: refused when a file's syntax cannot hold them, escaped otherwise.

Paths and flags come from the command line, the local machine or a `--from` snapshot (someone else's file).
Each generated file has its own syntax, so each gets its own quoting:

- tf_configure.bazelrc: Bazel reads it line by line (a trailing backslash joins lines), expands `${NAME}`
  from the environment before anything else, then splits on whitespace with shell-like quoting: `'` and `"`
  quote, a backslash escapes the next character, `#` outside quotes starts a comment
  (src/main/cpp/rc_file.cc, util/strings.cc). Nothing escapes a line break or `${`: such values are refused.
- build.sh: always single-quoted (render.shell_quote).
- README.md: paths in code spans whose backtick fence is longer than any run inside; prose from a snapshot
  (CPU model, GPU names) with Markdown's punctuation escaped and line breaks flattened.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import TYPE_CHECKING, Any

from envdoctor.errors import UsageError

if TYPE_CHECKING:
    from envdoctor.buildtf.plan import BuildPlan

# Control characters, line and paragraph separators, lone surrogates: no generated file can hold these as data.
_UNSAFE_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
_RC_BARE = re.compile(r"[A-Za-z0-9_.,:/=+@%-]+", re.ASCII)
# Free text: rendered through one_line/md_text, never refused (a CPU model with a newline is odd, not dangerous).
PROSE_FIELDS = frozenset({"cpu_model", "gpus", "notes", "warnings", "probe_compiler_version", "era"})
# Whose value it is, for the error message.
_LABELS = {
    "out_dir": "--out",
    "src_dir": "--src",
    "python_bin": "--python",
    "build_python": "--python",
    "venv": "--venv",
    "compiler_path": "--clang",
    "probe_compiler": "the probe compiler",
    "cuda_paths": "the CUDA paths",
    "cpu_description": "--cpu",
    "cpu_flags": "--cpu",
    "host_flags": "--cpu",
    "cuda_ccs": "--cuda-cc",
}
# Markdown punctuation that can open markup: escapes, code, HTML, links/images, table cells, entities, emphasis.
# (An intraword `_` opens nothing, and paths and variable names are full of them.)
_MD_SPECIAL = re.compile(r"([\\`<\[\]|&*])")


def unsafe_char(value: str) -> str | None:
    """The first character no generated file can hold (a line break, a control character), or None."""
    return next((c for c in value if unicodedata.category(c) in _UNSAFE_CATEGORIES), None)


def shown(value: str, limit: int = 80, quote: bool = False) -> str:
    """A value for a one-line error message: as it is when printable, else repr (which escapes line breaks);
    cut when long."""
    text = repr(value) if quote or unsafe_char(value) is not None or not value.isprintable() else value
    return text if len(text) <= limit else text[:limit] + "…"


def check_token(label: str, value: str) -> str:
    """Refuse a path or flag that cannot be written into a line of a generated file; return it unchanged."""
    bad = unsafe_char(value)
    if bad is not None:
        raise UsageError(
            f"{label} {shown(value, quote=True)} contains {unicodedata.name(bad, repr(bad))}: "
            "it cannot be written safely into the recipe's files"
        )
    return value


def check_plan(plan: BuildPlan) -> None:
    """Every path, flag and setting of the plan that reaches a generated file fits on one line of it.

    All fields but the free text (PROSE_FIELDS) are walked, so a field added later is checked too."""
    for name, value in dataclasses.asdict(plan).items():
        if name not in PROSE_FIELDS:
            for text in _strings(value):
                check_token(_LABELS.get(name, f"the plan's {name}"), text)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def rc_quote(label: str, value: str) -> str:
    """One double-quoted bazelrc word for `value`, or a UsageError when Bazel would read it differently."""
    check_token(label, value)
    if "${" in value:  # Bazel substitutes ${NAME} before it tokenizes: no quoting protects it
        raise UsageError(f"{label} {shown(value, quote=True)} contains '${{', which Bazel expands in .bazelrc files")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rc_word(label: str, value: str) -> str:
    """A bazelrc word: bare when it is plainly one token, else quoted."""
    return value if _RC_BARE.fullmatch(value) else rc_quote(label, value)


def one_line(value: object) -> str:
    """Free text (a CPU model, a GPU name, a note) on one line: controls become spaces, bad surrogates U+FFFD."""
    text = str(value).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    text = "".join(" " if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
    return text.strip()


def md_text(value: object) -> str:
    """Free text for Markdown prose: one line, with every character that could open markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(value))


def md_code(value: object, in_table: bool = False) -> str:
    """A Markdown code span holding `value` literally (CommonMark: the fence is a longer backtick run).

    In a GFM table a `|` splits the cell even inside a code span unless it is escaped."""
    text = one_line(value)
    if in_table:
        text = text.replace("|", "\\|")
    fence = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(text: str, info: str = "") -> str:
    """A fenced code block around `text` whose fence no line inside can close."""
    fence = "`" * max(3, _longest_run(text, "`") + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(r) for r in runs), default=0)

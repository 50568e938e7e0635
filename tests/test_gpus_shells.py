"""The emitted environment, read back by the real shells (skipped only where a shell is not installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from envdoctor.errors import UsageError
from envdoctor.gpus import environment_for
from envdoctor.gpus.shells import render

TRICKY = {
    "A_SPACE": "two words  and\ttab",
    "A_QUOTE": 'it\'s "quoted"',
    "A_BACKSLASH": "back\\slash \\' end\\",
    "A_DOLLAR": "$HOME `id` $(id) ${x}",
    "A_STAR": "* ? [a] ~ ; | & < > #",
    "A_EMPTY": "",
    "A_UNICODE": "Grüße ✓",
}
REAL = environment_for("none", [], memory_limit_mb=2048, allocator="cuda_malloc_async")

# How each shell loads the text and prints the variables back, NUL-separated.
READERS = {
    "bash": ["bash", "-c", 'eval "$(cat "$1")"; shift; for n; do printf "%s\\0" "${!n}"; done', "x"],
    "zsh": ["zsh", "-c", 'eval "$(cat "$1")"; shift; for n; do printf "%s\\0" "${(P)n}"; done', "x"],
    "fish": ["fish", "-c", 'source $argv[1]; for n in $argv[2..-1]; printf "%s\\0" $$n; end'],
    "dotenv": ["dash", "-c", 'set -a; . "$1"; shift; for n; do eval "printf \'%s\\0\' \\"\\$$n\\""; done', "x"],
}


def read_back(fmt: str, env: dict[str, str], tmp_path) -> dict[str, str]:
    argv = READERS[fmt]
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} is not installed")
    script = tmp_path / f"env.{fmt}"
    script.write_text(render(env, fmt))
    out = subprocess.run([*argv, str(script), *env], capture_output=True, check=True, timeout=30).stdout
    return dict(zip(env, out.decode().split("\0")))


@pytest.mark.parametrize("fmt", ["bash", "zsh", "fish"])
def test_tricky_values_survive(fmt, tmp_path):
    assert read_back(fmt, TRICKY, tmp_path) == TRICKY


@pytest.mark.parametrize("fmt", ["bash", "zsh", "fish", "dotenv"])
def test_real_environment_survives(fmt, tmp_path):
    assert read_back(fmt, REAL, tmp_path) == REAL


def test_dotenv_is_unquoted_for_docker_env_file(tmp_path):
    # docker run --env-file keeps every character after the first '=' (quotes included: docker/cli#3630), so a
    # quoted UUID would hide every GPU. The file must read the same split at '=' verbatim and sourced by a shell.
    env = {**REAL, "CUDA_VISIBLE_DEVICES": "GPU-c1d61728-05ec-5f50-fc60-c0fc41847924,MIG-GPU-956348bc/1/0"}
    text = render(env, "dotenv")
    assert "'" not in text and '"' not in text
    assert dict(line.split("=", 1) for line in text.splitlines()) == env
    assert read_back("dotenv", env, tmp_path) == env


@pytest.mark.parametrize("value", ["it's", "two words", "a#b", "$HOME", "x\\y", "Grüße", "tab\there"])
def test_dotenv_refuses_what_a_reader_would_change(value):
    with pytest.raises(UsageError, match="dotenv"):
        render({"X": value}, "dotenv")


def test_bash_output_passes_shellcheck(tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    script = tmp_path / "env.sh"
    script.write_text("#!/bin/bash\n" + render(REAL, "bash"))  # tricky values: read back above
    subprocess.run(["shellcheck", str(script)], check=True, timeout=60)


# PowerShell's quote characters, as its tokenizer lists them (CharExtensions.IsSingleQuote/IsDoubleQuote in
# src/System.Management.Automation/engine/parser/CharTraits.cs), written out here independently of envdoctor.
PS_SINGLE_QUOTES = ["'", "\u2018", "\u2019", "\u201a", "\u201b"]  # ' ‘ ’ ‚ ‛
PS_DOUBLE_QUOTES = ['"', "\u201c", "\u201d", "\u201e"]  # " “ ” „


def ps_single_quoted(text: str) -> tuple[str, str]:
    """(the string, what follows it) for a literal at the start of text, as PowerShell's tokenizer scans it
    (Tokenizer.ScanStringLiteral): any single quote ends it, unless another single quote follows, in which
    case the second one is kept."""
    assert text[:1] in PS_SINGLE_QUOTES, text
    out, i = [], 1
    while i < len(text):
        c = text[i]
        if c in PS_SINGLE_QUOTES:
            if text[i + 1 : i + 2] not in PS_SINGLE_QUOTES:
                return "".join(out), text[i + 1 :]
            i += 1
            c = text[i]
        out.append(c)
        i += 1
    raise AssertionError(f"unterminated string in {text!r}")


def test_powershell_quoting():
    assert render({"X": "it's"}, "powershell") == "$env:X = 'it''s'\n"
    if shutil.which("pwsh"):
        tricky = {k: v for k, v in TRICKY.items() if v}  # an empty value is the case below
        out = subprocess.run(
            ["pwsh", "-NoProfile", "-Command", render(tricky, "powershell") + "$env:A_QUOTE"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert out.strip() == TRICKY["A_QUOTE"]


@pytest.mark.parametrize("quote", PS_SINGLE_QUOTES + PS_DOUBLE_QUOTES)
def test_powershell_escapes_every_quote_its_tokenizer_knows(quote):
    # A hostile snapshot's UUID: with a typographic quote left alone, the rest ran as a command.
    value = f"GPU-{quote}; Remove-Item -Recurse ~; {quote}{quote}{quote}x{quote}"
    text = render({"CUDA_VISIBLE_DEVICES": value}, "powershell")
    prefix = "$env:CUDA_VISIBLE_DEVICES = "
    assert text.startswith(prefix)
    assert ps_single_quoted(text[len(prefix) :]) == (value, "\n")  # all of it one string, nothing after


def test_powershell_quote_list_is_the_tokenizers():
    from envdoctor.gpus.shells import POWERSHELL_SINGLE_QUOTES

    assert sorted(POWERSHELL_SINGLE_QUOTES) == sorted(PS_SINGLE_QUOTES)


def test_powershell_values_read_back_by_pwsh(tmp_path):
    if not shutil.which("pwsh"):
        pytest.skip("pwsh is not installed")
    env = {f"Q{i}": f"a{q}b{q}{q}c{q}" for i, q in enumerate(PS_SINGLE_QUOTES + PS_DOUBLE_QUOTES)}
    script = render(env, "powershell") + "".join(f"[Console]::Out.Write($env:{n} + [char]0)\n" for n in env)
    out = subprocess.run(["pwsh", "-NoProfile", "-Command", script], capture_output=True, timeout=60).stdout
    assert out.decode().split("\0")[:-1] == list(env.values())


@pytest.mark.parametrize("fmt", ["bash", "zsh", "fish", "powershell", "dotenv"])
def test_a_nul_in_a_value_is_refused(fmt):
    with pytest.raises(UsageError, match="NUL"):
        render({"CUDA_VISIBLE_DEVICES": "GPU-1\0; id"}, fmt)


def test_powershell_none_hides_every_gpu_without_an_empty_value():
    # PowerShell < 7.5 deletes a variable assigned '': CPU-only would silently become every GPU.
    text = render(REAL, "powershell")
    assert "$env:CUDA_VISIBLE_DEVICES = '-1'\n" in text
    assert "''" not in text
    from envdoctor.gpus.visible import resolve_visible_devices
    from tests.test_gpus_spec import gpus as fixture_gpus

    assert resolve_visible_devices("-1", fixture_gpus("h100-idle"), "PCI_BUS_ID").devices == []
    with pytest.raises(UsageError, match="PowerShell"):
        render({"OTHER": ""}, "powershell")


def test_json_and_unknown_format():
    import json

    assert json.loads(render(REAL, "json")) == REAL
    with pytest.raises(UsageError):
        render(REAL, "tcsh")

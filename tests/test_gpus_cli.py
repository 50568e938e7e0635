"""`envdoctor gpus`, `env` and `run` as a user runs them: real processes, GPU lists from recorded machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent / "fixtures" / "gpus"
PAIR = FIX / "theano-8400gs-titan.json"  # two idle GPUs, CUDA order reversed against nvidia-smi's
PRINT_CVD = [sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"]


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "TF_", "ENVDOCTOR_"))}
    e["XDG_RUNTIME_DIR"] = str(tmp_path)  # a private lock directory per test
    e["NO_COLOR"] = "1"
    e["COLUMNS"] = "200"
    return e


def envdoctor(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def notes(stderr: str) -> list[str]:
    """stderr without the line that every `env`/`run --from` prints (the GPUs come from a file)."""
    return [line for line in stderr.splitlines() if "not from this machine" not in line]


def test_gpus_json_shows_cuda_ordinals(env):
    doc = json.loads(envdoctor("gpus", "--json", "--from", str(PAIR), env=env).stdout)
    assert [(g["index"], g["cuda_ordinal"]) for g in doc["gpus"]] == [(0, 1), (1, 0)]
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = "1"
    doc = json.loads(envdoctor("gpus", "--json", "--from", str(PAIR), env=env).stdout)
    assert [(g["index"], g["cuda_ordinal"]) for g in doc["gpus"]] == [(0, None), (1, 0)]


def test_gpus_json_round_trips_as_a_snapshot(env, tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(envdoctor("gpus", "--json", "--from", str(FIX / "a100-mig.json"), env=env).stdout)
    again = json.loads(envdoctor("gpus", "--json", "--from", str(snap), env=env).stdout)
    assert [g["uuid"] for g in again["gpus"]][:2] == [
        "GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e",
        "GPU-61a65011-6571-a6d2-5ab8-66cbb6f7f9c3",
    ]


def test_gpus_table(env):
    env["CUDA_VISIBLE_DEVICES"] = "0,5,1"
    out = envdoctor("gpus", "--from", str(PAIR), env=env)
    assert out.returncode == 0
    assert "GeForce GTX TITAN" in out.stdout and "0000:03:00.0" in out.stdout
    assert "hidden" in out.stdout  # the 8400 GS: '5' cut the list before '1'
    assert "entry '5' names no GPU" in out.stdout
    assert "CUDA_DEVICE_ORDER=FASTEST_FIRST (unset), CUDA_VISIBLE_DEVICES='0,5,1'" in out.stdout


def test_gpus_table_shows_an_invalid_device_order_as_given(env):
    env["CUDA_DEVICE_ORDER"] = "PCI"
    out = envdoctor("gpus", "--from", str(PAIR), env=env).stdout
    assert "CUDA_DEVICE_ORDER='PCI'" in out and "neither FASTEST_FIRST nor PCI_BUS_ID" in out


def test_gpus_table_busy_h100(env):
    out = envdoctor("gpus", "--from", str(FIX / "h100-busy.json"), env=env).stdout
    assert "720 (6662 MiB)" in out and "6670 / 81559 MiB" in out


def test_gpus_without_gpu_exits_0(env, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text('{"gpus": []}')
    out = envdoctor("gpus", "--from", str(empty), env=env)
    assert out.returncode == 0 and "No NVIDIA GPU" in out.stdout


def test_env_prints_eval_ready_text(env):
    out = envdoctor("env", "--gpus", "0", "--from", str(PAIR), env=env)
    assert out.returncode == 0
    assert out.stdout == (
        "export CUDA_DEVICE_ORDER='PCI_BUS_ID'\n"
        "export CUDA_VISIBLE_DEVICES='GPU-00000000-0000-0000-0000-00000000840a'\n"
        "export TF_FORCE_GPU_ALLOW_GROWTH='true'\n"
    )


@pytest.mark.parametrize("spec", ["7", "0,0", "GPU-zz", "auto:3", "2:0", "bogus"])
def test_bad_spec_exits_2_with_nothing_on_stdout(env, spec):
    out = envdoctor("env", "--gpus", spec, "--from", str(PAIR), env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("envdoctor: error: ") and out.stderr.count("\n") == 1


def test_eval_of_failed_env_changes_nothing(env):
    script = (
        f'X=before; eval "$({sys.executable} -m envdoctor env --gpus 9 --from {PAIR} 2>/dev/null)"; '
        'echo "${CUDA_VISIBLE_DEVICES-unset} $X"'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout == "unset before\n"


def test_run_passes_exit_code_and_environment(env):
    out = envdoctor("run", "--gpus", "1", "--from", str(PAIR), "--", *PRINT_CVD, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "GPU-00000000-0000-0000-0000-0000000071a5"
    code = envdoctor("run", "--gpus", "none", "--", sys.executable, "-c", "raise SystemExit(7)", env=env)
    assert code.returncode == 7


def test_run_child_killed_by_signal(env):
    out = envdoctor(
        "run",
        "--gpus",
        "none",
        "--",
        sys.executable,
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
        env=env,
    )
    assert out.returncode == 128 + 15


def test_run_command_that_cannot_start_exits_like_env(env, tmp_path):
    # 127 not found, 126 not executable (env(1), timeout(1), shells): never 2, which the command itself may return.
    out = envdoctor("run", "--gpus", "none", "--", "no-such-command-xyz", env=env)
    assert out.returncode == 127 and "cannot run 'no-such-command-xyz'" in out.stderr and out.stdout == ""
    script = tmp_path / "not-executable.sh"
    script.write_text("exit 0\n")
    out = envdoctor("run", "--gpus", "none", "--", str(script), env=env)
    assert out.returncode == 126 and "Permission denied" in out.stderr
    own_two = envdoctor("run", "--gpus", "none", "--", sys.executable, "-c", "raise SystemExit(2)", env=env)
    assert own_two.returncode == 2 and own_two.stderr == ""


def test_run_auto_that_cannot_start_reserves_no_gpu(env):
    failed = envdoctor("run", "--gpus", "auto:2", "--from", str(PAIR), "--", "no-such-command-xyz", env=env)
    assert failed.returncode == 127 and "no-such-command-xyz" in failed.stderr
    both = envdoctor("env", "--gpus", "auto:2", "--format", "json", "--from", str(PAIR), env=env)
    assert both.returncode == 0, both.stderr  # both GPUs are still free for the next job


def test_env_auto_twice_picks_different_gpus(env):
    first = envdoctor("env", "--gpus", "auto:1", "--format", "json", "--from", str(PAIR), env=env)
    second = envdoctor("env", "--gpus", "auto:1", "--format", "json", "--from", str(PAIR), env=env)
    picks = [json.loads(o.stdout)["CUDA_VISIBLE_DEVICES"] for o in (first, second)]
    assert picks[0] == "GPU-00000000-0000-0000-0000-0000000071a5"  # the TITAN: most free memory
    assert picks[1] == "GPU-00000000-0000-0000-0000-00000000840a"
    third = envdoctor("env", "--gpus", "auto:1", "--from", str(PAIR), env=env)
    assert third.returncode == 2 and "just picked" in third.stderr


def test_concurrent_runs_pick_different_gpus(env):
    # Three `run --gpus auto:1` start at the same moment on a two-GPU machine: two GPUs, one refusal (a pick of a
    # job that never showed in NVML stays claimed for 60 s after its `run` ends).
    cmd = [sys.executable, "-m", "envdoctor", "run", "--gpus", "auto:1", "--from", str(PAIR), "--", *PRINT_CVD]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stdout.read().strip(), p.stderr.read()) for p in procs]
    picked = sorted(out for code, out, _ in results if code == 0)
    assert picked == ["GPU-00000000-0000-0000-0000-0000000071a5", "GPU-00000000-0000-0000-0000-00000000840a"]
    refused = [err for code, _, err in results if code != 0]
    assert len(refused) == 1 and "auto:1" in refused[0]


def test_lock_dir_is_private(env, tmp_path):
    envdoctor("env", "--gpus", "auto:1", "--from", str(PAIR), env=env)
    assert (tmp_path / "envdoctor").stat().st_mode & 0o777 == 0o700


def test_several_mig_devices_get_a_note_on_stderr_only(env):
    mig = FIX / "a100-mig.json"
    several = envdoctor("env", "--gpus", "all", "--from", str(mig), env=env)
    assert several.returncode == 0 and "6 MIG devices selected" in several.stderr
    assert several.stdout.count("MIG-") == 6  # the note changes nothing in what eval reads
    one = envdoctor("env", "--gpus", "2:0", "--from", str(mig), env=env)
    assert one.returncode == 0 and notes(one.stderr) == []


def test_unusable_lock_dir_is_a_usage_error(env, tmp_path):
    (tmp_path / "envdoctor").write_text("a file where the lock directory should be")
    out = envdoctor("env", "--gpus", "auto:1", "--from", str(PAIR), env=env)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert "auto:N lock" in out.stderr and "internal error" not in out.stderr


def test_unknown_format_exits_2(env):
    out = envdoctor("env", "--gpus", "none", "--format", "tcsh", env=env)
    assert out.returncode == 2 and out.stdout == "" and "tcsh" in out.stderr


def test_help_says_what_memory_limit_really_does(env):
    out = envdoctor("env", "--help", env=env).stdout
    assert "ENVDOCTOR_TF_MEMORY_LIMIT_MB" in " ".join(out.split())


def test_lock_is_exclusive_across_processes(tmp_path):
    from envdoctor.gpus.lock import GpuLock

    code = (
        "import sys; from pathlib import Path; from envdoctor.gpus.lock import GpuLock; "
        "from envdoctor.errors import UsageError\n"
        "try:\n    GpuLock(Path(sys.argv[1]), timeout=0.5).acquire(); print('got it')\n"
        "except UsageError as e:\n    print('refused:', e)"
    )
    with GpuLock(tmp_path):
        held = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
        ).stdout
    free = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    ).stdout
    assert held.startswith("refused: another envdoctor has held") and free.strip() == "got it"


def test_visible_module_stays_light():
    code = (
        "import sys, envdoctor.gpus.visible, envdoctor.gpus; "
        "print(sorted({'rich', 'pynvml', 'jinja2', 'tensorflow', 'numpy', 'typer'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_memory_limit_above_the_smallest_chosen_gpu_is_refused(env):
    # The real pair: GeForce 8400 GS (GPU 0, 511 MiB) and GTX TITAN (GPU 1, 6143 MiB).
    out = envdoctor("env", "--gpus", "1,0", "--memory-limit", "1024", "--from", str(PAIR), env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "envdoctor: error: --memory-limit 1024 MB is more than GPU 0 has (511 MB in total)\n"
    ran = envdoctor("run", "--gpus", "1", "--memory-limit", "999999", "--from", str(PAIR), "--", *PRINT_CVD, env=env)
    assert ran.returncode == 2 and ran.stdout == ""
    # auto:N is refused before its pick is recorded: both GPUs stay free for the next job.
    refused = envdoctor("env", "--gpus", "auto:1", "--memory-limit", "999999", "--from", str(PAIR), env=env)
    assert refused.returncode == 2
    assert envdoctor("env", "--gpus", "auto:2", "--from", str(PAIR), env=env).returncode == 0


def test_memory_limit_says_on_stderr_who_applies_it(env):
    out = envdoctor("env", "--gpus", "1", "--memory-limit", "4096", "--from", str(PAIR), env=env)
    assert out.returncode == 0 and "export ENVDOCTOR_TF_MEMORY_LIMIT_MB='4096'" in out.stdout
    assert len(notes(out.stderr)) == 1 and "envdoctor.configure_tensorflow()" in out.stderr
    ran = envdoctor("run", "--gpus", "1", "--memory-limit", "4096", "--from", str(PAIR), "--", *PRINT_CVD, env=env)
    assert ran.returncode == 0 and "envdoctor.configure_tensorflow()" in ran.stderr
    assert notes(envdoctor("env", "--gpus", "1", "--from", str(PAIR), env=env).stderr) == []


@pytest.mark.parametrize("command", ["env", "run"])
def test_no_gpu_error_says_why(env, tmp_path, command):
    empty = tmp_path / "empty.json"
    empty.write_text('{"gpus": []}')
    args = [command, "--gpus", "0", "--from", str(empty)] + (["--", "true"] if command == "run" else [])
    out = envdoctor(*args, env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert f"no usable NVIDIA GPU (the snapshot {empty} lists no GPU)" in out.stderr
    assert "lists no GPU" in envdoctor("env", "--gpus", "all", "--from", str(empty), env=env).stderr


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_gpus_into_a_closed_pipe_exits_0_without_a_traceback(env, fmt):
    # `envdoctor gpus | head -1`: the reader is gone before envdoctor writes (a pipe with no read end).
    result = _into_closed_pipe(["gpus", *fmt, "--from", str(PAIR)], env)
    assert result.returncode == 0 and result.stderr == ""


def _into_closed_pipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "envdoctor", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)


def test_all_on_gpus_that_cannot_run_cuda_work_says_why(env, tmp_path):
    # A real A100 of the MIG capture, with MIG on but its MIG devices destroyed: listed, yet unusable.
    doc = json.loads((FIX / "a100-mig.json").read_text())
    doc["gpus"] = [dict(doc["gpus"][0], mig_enabled=True, mig_devices=[])]
    snapshot = tmp_path / "mig-no-devices.json"
    snapshot.write_text(json.dumps(doc))
    out = envdoctor("env", "--gpus", "all", "--from", str(snapshot), env=env)
    assert out.returncode == 0
    assert "no usable GPU here (every GPU has MIG enabled and no MIG device): 'all' selects none" in out.stderr


def test_gpus_table_keeps_uuid_and_bus_id_whole_and_has_no_trailing_spaces(env):
    # The real busy H100 and the MIG A100 server: users copy these UUIDs into --gpus.
    for name in ("h100-busy.json", "a100-mig.json"):
        doc = json.loads((FIX / name).read_text())
        whole = [g["uuid"] for g in doc["gpus"]] + [g["pci_bus_id"] for g in doc["gpus"]]
        whole += [m["uuid"] for g in doc["gpus"] for m in g["mig_devices"]]
        for columns in ("200", "80"):  # 80: too narrow for the table, one "column: value" line each
            env["COLUMNS"] = columns
            out = envdoctor("gpus", "--from", str(FIX / name), env=env).stdout
            assert all(text in out for text in whole), (name, columns)
            assert all(line == line.rstrip() and len(line) <= int(columns) for line in out.splitlines())
    env["COLUMNS"] = "80"
    narrow = envdoctor("gpus", "--from", str(FIX / "h100-busy.json"), env=env).stdout.splitlines()
    assert "UUID               GPU-c1d61728-05ec-5f50-fc60-c0fc41847924" in narrow
    assert "processes          720 (6662 MiB)" in narrow


def test_gpus_piped_without_columns_is_not_padded(env):
    del env["COLUMNS"]
    out = envdoctor("gpus", "--from", str(PAIR), env=env).stdout
    assert "┃ nvidia-smi ┃" in out  # the table, not folded at 80 columns
    assert [line for line in out.splitlines() if line != line.rstrip()] == []


def test_env_into_a_closed_pipe_exits_0_without_a_traceback(env):
    result = _into_closed_pipe(["env", "--gpus", "none", "--format", "json"], env)
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.parametrize("spec", ["auto:" + "1" * 5000, "1" * 5000, "0:" + "1" * 5000, "GPU-" + "a" * 9000])
@pytest.mark.parametrize("command", ["env", "run"])
def test_huge_specs_are_a_one_line_usage_error(env, spec, command):
    args = [command, "--gpus", spec, "--from", str(PAIR)] + (["--", "true"] if command == "run" else [])
    out = envdoctor(*args, env=env)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert out.stderr.startswith("envdoctor: error: ") and len(out.stderr) < 300, out.stderr[:300]
    assert not (Path(env["XDG_RUNTIME_DIR"]) / "envdoctor" / "picks.json").exists()  # nothing was claimed


def test_a_huge_cuda_visible_devices_is_reported_not_a_crash(env):
    env["CUDA_VISIBLE_DEVICES"] = "1" * 5000 + ",0"
    out = envdoctor("gpus", "--json", "--from", str(PAIR), env=env)
    assert out.returncode == 0 and out.stderr == ""
    doc = json.loads(out.stdout)
    assert [g["cuda_ordinal"] for g in doc["gpus"]] == [None, None]  # the first entry hides everything
    assert doc["cuda_visible_devices"] == env["CUDA_VISIBLE_DEVICES"]  # reported as it is ...
    assert [len(p) < 200 for p in doc["problems"]] == [True]  # ... and explained in one short line

"""The auto:N lock directory against another local user, and picks that scale: a hundred `run --gpus auto:1`
started together on a fake NVML with enough GPUs all start at once, each on its own GPU."""

from __future__ import annotations

import copy
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from envdoctor.errors import UsageError
from envdoctor.facts import GpuProcess
from envdoctor.gpus.lock import PICK_TTL_S, GpuLock, lock_dir, pick_from
from envdoctor.gpus.snapshot import load_gpus
from tests.fakenvml import FakeNvml

FIX = Path(__file__).parent / "fixtures"
PAIR = FIX / "gpus" / "theano-8400gs-titan.json"  # two idle GPUs
OTHER_UID = 65534  # nobody: stands for another local user (the tests run as root, who may chown)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A private XDG_RUNTIME_DIR; the lock directory is <it>/envdoctor."""
    base = tmp_path / "run"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    return base


def refused(directory: Path) -> str:
    with pytest.raises(UsageError) as err, GpuLock(directory, timeout=1):
        pass
    message = str(err.value)
    assert "\n" not in message and "XDG_RUNTIME_DIR" in message  # one line, with a way out
    return message


# --- the lock directory ------------------------------------------------------------------------------------


def test_runtime_dir_is_used_and_the_lock_dir_is_created_private(runtime):
    assert lock_dir() == runtime / "envdoctor"
    with GpuLock() as lock:
        lock.record(["GPU-a"], pid=os.getpid())
    st = os.lstat(runtime / "envdoctor")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(runtime / "envdoctor" / "picks.json").st_mode) == 0o600


def test_without_a_runtime_dir_of_ours_the_temp_dir_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert lock_dir() == tmp_path / f"envdoctor-{os.geteuid()}"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert lock_dir() == tmp_path / f"envdoctor-{os.geteuid()}"
    if os.geteuid() == 0:  # `sudo -E` keeps the caller's runtime dir, which its owner controls: not used
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, OTHER_UID, OTHER_UID)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(theirs))
        assert lock_dir() == tmp_path / f"envdoctor-{os.geteuid()}"


@needs_root
def test_a_directory_made_first_by_another_user_is_refused(tmp_path):
    planted = tmp_path / "envdoctor-0"
    planted.mkdir(mode=0o700)
    os.chown(planted, OTHER_UID, OTHER_UID)
    message = refused(planted)
    assert f"belongs to uid {OTHER_UID}, not to you" in message
    assert os.listdir(planted) == []  # nothing written into it


def test_a_directory_open_to_others_is_refused(tmp_path):
    shared = tmp_path / "envdoctor-0"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert "has mode 0777, not 0700" in refused(shared) and f"chmod 700 {shared}" in refused(shared)
    assert os.listdir(shared) == []


@pytest.mark.parametrize("target", ["dir", "file"])
def test_a_planted_symlink_is_never_followed(tmp_path, target):
    victim = tmp_path / "victim"  # e.g. ~/.ssh of the user running envdoctor
    if target == "dir":
        victim.mkdir(mode=0o700)
    else:
        victim.write_text("keep me\n")
    link = tmp_path / "envdoctor-0"
    link.symlink_to(victim)
    assert "is a symbolic link" in refused(link)
    assert (os.listdir(victim) == []) if target == "dir" else victim.read_text() == "keep me\n"
    assert link.is_symlink()


def test_links_inside_the_lock_directory_are_never_written_through(runtime):
    ours = runtime / "envdoctor"
    ours.mkdir(mode=0o700)
    victim = runtime / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA me\n")
    (ours / "picks.json").symlink_to(victim)
    with GpuLock() as lock:  # a link as the claims file: neither read nor written through
        assert lock.taken() == set()
        lock.record(["GPU-a"], pid=os.getpid())
    assert victim.read_text() == "ssh-ed25519 AAAA me\n"
    assert not (ours / "picks.json").is_symlink()
    assert json.loads((ours / "picks.json").read_text())[0]["uuid"] == "GPU-a"
    (ours / "gpus.lock").unlink()
    (ours / "gpus.lock").symlink_to(victim)
    with pytest.raises(UsageError, match="cannot open .*gpus.lock"):
        GpuLock(timeout=1).acquire()
    assert victim.read_text() == "ssh-ed25519 AAAA me\n"


def test_a_fifo_as_the_lock_file_is_refused_without_hanging(runtime):
    ours = runtime / "envdoctor"
    ours.mkdir(mode=0o700)
    os.mkfifo(ours / "gpus.lock")
    started = time.monotonic()
    with pytest.raises(UsageError, match="not a regular file of yours"):
        GpuLock(timeout=1).acquire()
    assert time.monotonic() - started < 1


@needs_root
def test_cli_refuses_a_foreign_lock_dir_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "ENVDOCTOR_", "XDG_"))}
    env["TMPDIR"] = str(tmp_path)
    planted = tmp_path / "envdoctor-0"
    planted.mkdir(mode=0o755)
    os.chown(planted, OTHER_UID, OTHER_UID)
    out = subprocess.run(
        [sys.executable, "-m", "envdoctor", "env", "--gpus", "auto:1", "--from", str(PAIR)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"envdoctor: error: the auto:N lock directory {planted} belongs to uid 65534")


# --- claims ------------------------------------------------------------------------------------------------


def test_a_claim_ends_once_its_job_has_shown_in_nvml(runtime):
    titan, gs = sorted(load_gpus(PAIR), key=lambda g: -(g.memory_free_bytes or 0))
    dead = 2**22 + 12345  # an `env` that has exited: its claim lives on for PICK_TTL_S ...
    with GpuLock() as lock:
        lock.record([titan.uuid], pid=dead)
    made = time.time()
    assert pick_from(1, [titan, gs], made - 0.5, pid=dead)[0].uuid == gs.uuid  # read before the claim: honoured
    busy = copy.deepcopy(titan)
    busy.processes = [GpuProcess(pid=4242, used_memory_bytes=1 << 30)]
    with pytest.raises(UsageError):  # the job shows on the TITAN now; the 8400 GS is claimed too
        pick_from(1, [busy, gs], made + 1, pid=dead)
    # ... until NVML has shown the job: once it has ended, the TITAN is free again, long before the TTL.
    assert pick_from(1, [titan, gs], made + 2, pid=dead)[0].uuid == titan.uuid
    with GpuLock() as lock:  # a picker that read NVML before the job showed still honours the claim
        assert titan.uuid in lock.taken(made + 0.9)


def test_a_claim_dies_with_its_process_not_with_a_reused_pid(runtime):
    with GpuLock() as lock:
        lock.record(["GPU-live"], pid=os.getpid())
        picks = lock.read_picks()
        picks.append(dict(picks[0], uuid="GPU-reused", start="1", time=time.time() - 2 * PICK_TTL_S))
        lock._write_picks(picks)
        assert lock.taken() == {"GPU-live"}  # same pid, another start time: the claimer is gone


def test_the_lock_is_not_held_while_the_command_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "ENVDOCTOR_"))}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "envdoctor", "run", "--gpus", "auto:1", "--from", str(PAIR), "--", "sleep", "30"]
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        picks = tmp_path / "envdoctor" / "picks.json"
        deadline = time.monotonic() + 30
        while not picks.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        with GpuLock(tmp_path / "envdoctor", timeout=0.5):
            pass
        assert time.monotonic() - started < 0.5
        second = subprocess.run([*cmd[:-3], "--", "true"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        third = subprocess.run([*cmd[:-3], "--", "true"], env=env, capture_output=True, text=True, timeout=60)
        assert third.returncode == 2 and "2 were just picked by another envdoctor" in third.stderr
    finally:
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=30)


# --- a hundred launches at once ----------------------------------------------------------------------------


def fake_machine(count: int) -> FakeNvml:
    """The real idle H100 capture, repeated as `count` idle GPUs with their own index, UUID and bus id."""
    base = json.loads((FIX / "h100-firecracker" / "idle" / "nvml.json").read_text())
    one = base["gpus"][0]
    gpus = []
    for i in range(count):
        gpu = copy.deepcopy(one)
        gpu.update(index=i, minor_number=i, uuid=f"GPU-{i:08x}-0000-4000-8000-000000000000")
        gpu["pci"] = dict(one["pci"], busId=f"00000000:{i // 32 + 1:02x}:{i % 32:02x}.0")
        gpus.append(gpu)
    return FakeNvml(dict(base, gpus=gpus, device_count=count))


def _launch(out: Path, go: Path) -> int:
    """In a forked child: `envdoctor run --gpus auto:1 -- sh -c ...` through the real code, NVML being the fake.
    The command writes what it got, then runs until the test lets it go: a job that waited for another one
    to end could never start."""
    from envdoctor.gpus.launch import run_with_gpus

    script = 'echo "$CUDA_VISIBLE_DEVICES" > "$0" && read -r line < "$1"'  # only builtins: no process to start
    return run_with_gpus(["sh", "-c", script, str(out / str(os.getpid())), str(go)], "auto:1", None)


def _until_all_started(out: Path, jobs: int, deadline: float) -> list[str]:
    while True:
        picks = [f.read_text() for f in out.iterdir()]
        done = [p.strip() for p in picks if p.endswith("\n")]
        if len(done) == jobs or time.monotonic() > deadline:
            return done
        time.sleep(0.01)


def test_a_hundred_simultaneous_launches_all_start_on_distinct_gpus(runtime, tmp_path, monkeypatch):
    jobs, gpus = 100, 128
    monkeypatch.setitem(sys.modules, "pynvml", fake_machine(gpus))
    out, go = tmp_path / "started", tmp_path / "go"
    out.mkdir()
    os.mkfifo(go)
    import envdoctor.gpus.launch
    import envdoctor.probes.nvidia  # noqa: F401

    gate = os.open(go, os.O_RDWR)  # held open: a command that opens the FIFO late still finds a writer
    started = time.monotonic()
    pids = []
    try:
        for _ in range(jobs):
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                code = 3
                try:
                    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the forked child ends with os._exit
                    code = _launch(out, go)
                finally:
                    os._exit(code)
            pids.append(pid)
        picks = _until_all_started(out, jobs, started + 30)
        took = time.monotonic() - started
    finally:
        os.write(gate, b"go\n" * jobs)  # `read` takes one line each: every command ends
        statuses = _wait_all(pids, time.monotonic() + 30)
        os.close(gate)
    print(f"\n{jobs} launches on {gpus} fake GPUs: all {len(picks)} commands running after {took:.2f} s")
    assert len(picks) == jobs and len(set(picks)) == jobs  # all ran at the same time, each on its own GPU
    assert all(p.startswith("GPU-") and "," not in p for p in picks)
    assert statuses == [0] * jobs
    assert took < 10  # a few seconds, mostly CPU for 100 forks on a small, shared machine


def _wait_all(pids: list[int], deadline: float) -> list[int]:
    """Exit codes of the forked children in order; any still running at the deadline is killed (never a hang)."""
    codes: dict[int, int] = {}
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    for pid in pids:
        if pid not in codes:
            os.kill(pid, signal.SIGKILL)
            codes[pid] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return [codes[p] for p in pids]

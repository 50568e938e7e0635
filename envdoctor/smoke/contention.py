"""Who else used the machine while we measured: CPU time of other processes, hypervisor steal, load, GPU processes.

Read from /proc by the parent (never TensorFlow): a snapshot at each phase boundary, and the difference between
two snapshots says how much of the machine's CPU time went to processes outside our own tree. Processes in
other containers on the same kernel are invisible by pid but not in /proc/stat's totals: their share is what the
machine was busy with beyond ours and the processes we can see, and it is reported as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

# Why these thresholds: on a quiet 2-core VM, daemons and kernel threads take 1-3% of the machine; another
# process taking a tenth of it (a fifth of one core here) already moved images/s by ~10% in alternating runs.
OTHERS_UNRELIABLE = 0.10  # share of the machine's CPU time used by others
STEAL_UNRELIABLE = 0.05  # share of the machine's CPU time the hypervisor gave to other guests
TOP = 5  # competing processes named in the report

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Proc(NamedTuple):
    name: str
    cpu: float  # CPU seconds (user + system)
    ppid: int
    start: int  # clock ticks after boot: with the pid, who the process is (kernel threads rename themselves)


@dataclass
class Snapshot:
    at: float  # time.monotonic()
    busy: float  # machine CPU seconds, all CPUs (user+nice+system+irq+softirq)
    steal: float
    load: tuple[float, float, float]
    procs: dict[int, Proc]
    reaped_children: float  # CPU seconds of our own children already waited for (os.times)


def _proc_stat(root: Path) -> tuple[float, float]:
    try:
        fields = (root / "stat").read_text().split("\n", 1)[0].split()[1:]
        values = [int(v) / _CLK_TCK for v in fields]
    except (OSError, ValueError):
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0.0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def _processes(root: Path) -> dict[int, Proc]:
    found: dict[int, Proc] = {}
    try:
        entries = [e for e in os.listdir(root) if e.isdigit()]
    except OSError:
        return found
    for pid in entries:
        try:
            raw = (root / pid / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, _, rest = raw.partition(" (")[2].rpartition(") ")
        fields = rest.split()
        if len(fields) > 12:
            start = int(fields[19]) if len(fields) > 19 else 0
            found[int(pid)] = Proc(name, (int(fields[11]) + int(fields[12])) / _CLK_TCK, int(fields[1]), start)
    return found


def snapshot(root: Path = Path("/proc")) -> Snapshot:
    import time

    busy, steal = _proc_stat(root)
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    times = os.times()
    return Snapshot(time.monotonic(), busy, steal, load, _processes(root), times.children_user + times.children_system)


def _own_tree(procs: dict[int, Proc], me: int) -> set[int]:
    """This process and every descendant (the training child, the evaluator, tune legs)."""
    own, grew = {me}, True
    while grew:
        grew = False
        for pid, proc in procs.items():
            if proc.ppid in own and pid not in own:
                own.add(pid)
                grew = True
    return own


@dataclass
class Contention:
    """What competed with us between two snapshots."""

    seconds: float
    cpus: int
    own_cpu: float
    others_cpu: float  # visible and invisible together
    invisible_cpu: float  # busy time no visible process accounts for (other containers, short-lived processes)
    steal_cpu: float
    load_max: float
    top: list[dict[str, Any]] = field(default_factory=list)  # the competing processes we can see
    gpu_processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def capacity(self) -> float:
        return max(self.seconds * self.cpus, 1e-9)

    @property
    def others_share(self) -> float:
        return self.others_cpu / self.capacity

    @property
    def steal_share(self) -> float:
        return self.steal_cpu / self.capacity

    def reasons(self) -> list[str]:
        """Why the numbers taken in this window cannot be trusted; empty when the machine was ours."""
        why = []
        if self.others_share > OTHERS_UNRELIABLE:
            who = ", ".join(f"{p['name']} (pid {p['pid']}, {p['cpu_seconds']:.1f} CPU s)" for p in self.top)
            hidden = (
                (
                    f"{self.invisible_cpu:.0f} CPU s by processes not visible from here (other containers "
                    "or short-lived ones)"
                )
                if self.invisible_cpu >= 1
                else ""
            )
            named = "; ".join(x for x in (who, hidden) if x)
            why.append(
                f"other processes used {self.others_share:.0%} of the machine's CPU time while it ran "
                f"({named}); load average up to {self.load_max:.1f} on {self.cpus} CPUs"
            )
        if self.steal_share > STEAL_UNRELIABLE:
            why.append(f"the hypervisor gave {self.steal_share:.0%} of this VM's CPU time to other guests (steal)")
        if self.gpu_processes:
            names = ", ".join(f"{p.get('name') or '?'} (pid {p['pid']}, GPU {p['gpu']})" for p in self.gpu_processes)
            why.append(f"other processes ran on the GPU: {names}")
        return why

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "cpus": self.cpus,
            "own_cpu_seconds": round(self.own_cpu, 2),
            "others_cpu_seconds": round(self.others_cpu, 2),
            "invisible_cpu_seconds": round(self.invisible_cpu, 2),
            "steal_cpu_seconds": round(self.steal_cpu, 2),
            "others_share": round(self.others_share, 4),
            "steal_share": round(self.steal_share, 4),
            "load_max": round(self.load_max, 2),
            "top": self.top,
            "gpu_processes": self.gpu_processes,
            "unreliable": bool(self.reasons()),
            "reasons": self.reasons(),
        }


def between(first: Snapshot, last: Snapshot, me: int | None = None, cpus: int | None = None) -> Contention:
    """The competition between two snapshots: machine busy time less our own tree's, split into the processes
    we can see (named, biggest first) and the rest."""
    me = os.getpid() if me is None else me
    own = _own_tree(first.procs, me) | _own_tree(last.procs, me)
    own_cpu = last.reaped_children - first.reaped_children
    visible: dict[int, tuple[str, float]] = {}
    for pid, proc in last.procs.items():
        before = first.procs.get(pid)
        # The same process when it started at the same tick; a name is no identity (a kworker renames itself
        # with each work queue it serves: comparing names counted its whole lifetime in every window).
        delta = proc.cpu - (before.cpu if before and before.start == proc.start else 0.0)
        if pid in own:
            own_cpu += delta
        elif delta > 0:
            visible[pid] = (proc.name, delta)
    for pid in own & first.procs.keys() - last.procs.keys():  # ended and reaped: counted in reaped_children
        own_cpu -= first.procs[pid].cpu
    busy = max(0.0, last.busy - first.busy)
    visible_cpu = sum(cpu for _n, cpu in visible.values())
    invisible = max(0.0, busy - own_cpu - visible_cpu)
    top = sorted(visible.items(), key=lambda kv: -kv[1][1])[:TOP]
    return Contention(
        seconds=max(0.0, last.at - first.at),
        cpus=cpus or os.cpu_count() or 1,
        own_cpu=max(0.0, own_cpu),
        others_cpu=visible_cpu + invisible,
        invisible_cpu=invisible,
        steal_cpu=max(0.0, last.steal - first.steal),
        load_max=max(first.load[0], last.load[0]),
        top=[
            {"pid": pid, "name": command_line(pid) or name, "cpu_seconds": round(cpu, 2)}
            for pid, (name, cpu) in top
            if cpu >= 0.5
        ],
    )


def command_line(pid: int, limit: int = 80) -> str | None:
    """The process's command line, shortened: "python3" alone names nobody."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def gpu_processes(own: set[int]) -> list[dict[str, Any]]:
    """Processes NVML lists on any GPU that are not ours (none without NVML: never raises)."""
    try:
        from envdoctor.gpus.snapshot import live_gpus

        gpus, _why = live_gpus()
    except Exception:  # a broken NVML is no reason to fail a measurement
        return []
    return [{"gpu": g.index, "pid": p.pid, "name": p.name} for g in gpus for p in g.processes if p.pid not in own]


class Watch:
    """Snapshots at the phase boundaries of one run (the training child's "phase" events), and the competition
    in each window between them."""

    def __init__(self) -> None:
        self.marks: dict[str, Snapshot] = {"start": snapshot()}
        self.gpu: list[dict[str, Any]] = []

    def mark(self, phase: str) -> None:
        self.marks[phase] = snapshot()
        if phase == "train":  # once, where the GPU is in use: who else holds it
            self.gpu = gpu_processes(_own_tree(self.marks[phase].procs, os.getpid()))

    def windows(self) -> dict[str, dict[str, Any]]:
        """calibrate (calibration to training), train (training to the recheck, or to evaluation), measured (the
        first calibration to evaluation, the recheck included), run (start to end)."""
        self.marks.setdefault("end", snapshot())
        spans = {
            "calibrate": ("calibrate", "train"),
            "train": ("train", "recheck"),
            "measured": ("calibrate", "evaluate"),
            "run": ("start", "end"),
        }
        out = {}
        for name, (first, last) in spans.items():
            if first in self.marks:
                until = self.marks.get(last) or self.marks.get("evaluate") or self.marks["end"]
                window = between(self.marks[first], until)
                window.gpu_processes = self.gpu
                out[name] = window.to_dict()
        return out

"""--strategy multi-worker: the cluster, the worker list and TF_CONFIG for MultiWorkerMirroredStrategy.

The cluster comes from the engine that started the workers, read by TensorFlow's own resolvers: under Slurm
(`srun -n 2 envdoctor smoke-test --strategy multi-worker`) SlurmClusterResolver reads the step's variables; under
Kubernetes (Kubeflow's TFJob) TF_CONFIG is already set; only without either do --workers and --worker-index say
it. All workers must stop at the same step (a collective waits for everyone), so a multi-worker run counts steps
or epochs, never wall time.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from envdoctor.errors import UsageError

_WORKER = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


def parse_workers(text: str | None) -> list[str]:
    """'host:port,host:port' -> the list; a bad entry is a usage error."""
    if not text:
        raise UsageError("--strategy multi-worker needs --workers host:port,host:port,...")
    workers = [w.strip() for w in text.split(",") if w.strip()]
    for worker in workers:
        m = _WORKER.match(worker)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise UsageError(f"bad worker {worker!r}: write host:port (port 1-65535)")
    if len(set(workers)) != len(workers):
        raise UsageError(f"a worker is listed twice in {text!r}")
    return workers


def tf_config(workers: list[str], index: int | None) -> str:
    """The TF_CONFIG of worker `index` (worker 0 is the chief that writes checkpoints)."""
    if index is None:
        raise UsageError("--strategy multi-worker needs --worker-index (0 on the chief)")
    if not 0 <= index < len(workers):
        raise UsageError(f"--worker-index {index} is out of range for {len(workers)} workers")
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def listening(worker: str, seconds: float = 1.0) -> bool:
    """Whether something accepts connections at host:port: a worker that never started does not."""
    host, _, port = worker.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------ the cluster, from its engine

ClusterSource = Literal["--workers", "slurm", "tf_config"]
SLURM_STEP_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE")
# Without ports reserved for the step (slurm.conf MpiParams=ports=...), each job gets its own block of
# PORTS_PER_JOB ports from its job id, so that two jobs sharing a node do not both take TensorFlow's 8888.
PORT_FLOOR, PORT_BLOCKS, PORTS_PER_JOB = 20000, 2000, 16
RESOLVE_TIMEOUT = 120.0  # seconds for the resolver child (it imports TensorFlow)


@dataclass(frozen=True)
class Cluster:
    workers: list[str]  # host:port, worker 0 first (the chief)
    index: int  # this process's worker
    source: ClusterSource
    detail: str  # where it came from, for the report: "Slurm job 12 step 0", "TF_CONFIG (task worker 1)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "detail": self.detail,
            "workers": self.workers,
            "worker_index": self.index,
            "chief": self.workers[0],
        }


def find_cluster(workers: str | None, index: int | None, environ: Mapping[str, str] | None = None) -> Cluster:
    """--workers/--worker-index when given (they win: the person typed them), else TF_CONFIG (Kubernetes), else
    the Slurm step's variables; none of them is a usage error that says the three ways."""
    environ = os.environ if environ is None else environ
    if workers is not None or index is not None:
        listed = parse_workers(workers)
        tf_config(listed, index)  # raises when --worker-index is missing or out of range
        return Cluster(listed, index, "--workers", "--workers")  # type: ignore[arg-type]
    if environ.get("TF_CONFIG"):
        return from_tf_config(environ["TF_CONFIG"])
    if all(environ.get(name) for name in SLURM_STEP_VARIABLES):
        return from_slurm(environ)
    raise UsageError(
        "--strategy multi-worker needs its cluster: run it under srun (Slurm), in a TFJob "
        "(TF_CONFIG set), or give --workers host:port,host:port,... and --worker-index"
    )


def from_tf_config(text: str) -> Cluster:
    """TF_CONFIG as Kubeflow's TFJob writes it. A chief and workers become one worker list, the chief first:
    MultiWorkerMirroredStrategy treats worker 0 as the chief, and every task computes the same list."""
    from envdoctor.jsonload import JsonInputError, loads_bounded

    try:
        config = loads_bounded(text)
    except JsonInputError as exc:
        raise UsageError(f"TF_CONFIG is not JSON ({exc})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UsageError('TF_CONFIG needs a "cluster" and a "task" object')
    other = sorted(set(cluster) - {"chief", "worker"})
    if other or task.get("type") not in ("chief", "worker"):
        raise UsageError(
            f"TF_CONFIG has {', '.join(other) or task.get('type')!s} tasks: the smoke-test trains "
            "with MultiWorkerMirroredStrategy, which takes a chief and workers only"
        )
    chief, workers = _address_list(cluster, "chief"), _address_list(cluster, "worker")
    task_index = task.get("index", 0)
    if type(task_index) is not int:
        raise UsageError(f"TF_CONFIG task index {task_index!r} is not a number")
    index = task_index if task["type"] == "chief" else len(chief) + task_index
    listed = parse_workers(",".join(chief + workers))
    tf_config(listed, index)  # raises when the index is out of range
    return Cluster(listed, index, "tf_config", f"TF_CONFIG (task {task['type']} {task_index})")


def _address_list(cluster: dict[str, Any], job: str) -> list[str]:
    addresses = cluster.get(job, [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise UsageError(f"TF_CONFIG cluster.{job} must be a list of host:port")
    return addresses


def port_base(environ: Mapping[str, str]) -> int:
    """The step's reserved ports (SLURM_STEP_RESV_PORTS, e.g. 12000-12015) when Slurm reserves them, else a
    block of PORTS_PER_JOB from the job id: the same number in every task of the step, without talking."""
    reserved = re.match(r"(\d+)", environ.get("SLURM_STEP_RESV_PORTS", ""))
    if reserved:
        return int(reserved.group(1))
    job = environ.get("SLURM_JOB_ID", "")
    return PORT_FLOOR + (int(job) % PORT_BLOCKS) * PORTS_PER_JOB if job.isdigit() else PORT_FLOOR


def from_slurm(environ: Mapping[str, str]) -> Cluster:
    """TensorFlow's SlurmClusterResolver, run in a child (this process never imports TensorFlow)."""
    from envdoctor.runner import run_command

    env = {**environ, "ENVDOCTOR_PORT_BASE": str(port_base(environ)), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = run_command(
        [sys.executable or "python3", "-m", "envdoctor.smoke.multiworker"], timeout=RESOLVE_TIMEOUT, env=env
    )
    lines = result.stdout.strip().splitlines()
    if not result.ok or not lines:
        why = result.failure()
        raise UsageError(f"TensorFlow's SlurmClusterResolver could not resolve this Slurm step: {why}")
    resolved = json.loads(lines[-1])
    workers, index = resolved["cluster"].get("worker", []), resolved["task_id"]
    node = environ.get("SLURMD_NODENAME")
    if node and workers[index].rpartition(":")[0] != node:  # its rank-to-node rule assumes block distribution
        raise UsageError(
            f"SlurmClusterResolver places task {index} on {workers[index]}, but it runs on {node}: "
            "use Slurm's default block distribution (no --distribution=cyclic)"
        )
    detail = f"Slurm job {environ.get('SLURM_JOB_ID', '?')} step {environ.get('SLURM_STEP_ID', '?')}"
    return Cluster(parse_workers(",".join(workers)), index, "slurm", detail)


def _resolve_in_child() -> None:
    """`python -m envdoctor.smoke.multiworker`: print {"cluster": ..., "task_id": N} for this Slurm task.

    GPUs are envdoctor's (--gpus, the same as `envdoctor env`), not the resolver's: auto_set_gpu=False, and one
    nominal GPU per task keeps its GPU arithmetic valid on CPU-only nodes (0 GPUs per task divides by zero)."""
    import tensorflow as tf
    from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import expand_tasks_per_node

    per_node = max(expand_tasks_per_node(os.environ["SLURM_STEP_TASKS_PER_NODE"]))
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=int(os.environ["ENVDOCTOR_PORT_BASE"]), gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False
    )
    cluster = resolver.cluster_spec().as_dict()
    print(json.dumps({"cluster": cluster, "task_type": resolver.task_type, "task_id": resolver.task_id}))


if __name__ == "__main__":
    _resolve_in_child()

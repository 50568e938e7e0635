"""The multi-worker cluster from its engine, without one running: TF_CONFIG as TFJob writes it, the Slurm port
rule, and the errors a person can act on. (The real srun run is in test_slurm.py.)"""

from __future__ import annotations

import json

import pytest

from envdoctor.errors import UsageError
from envdoctor.runner import CommandResult
from envdoctor.smoke import multiworker

SLURM = {
    "SLURM_PROCID": "1",
    "SLURM_STEP_NUM_TASKS": "2",
    "SLURM_STEP_NODELIST": "gpu[01-02]",
    "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
    "SLURM_JOB_ID": "4242",
    "SLURM_STEP_ID": "0",
    "SLURMD_NODENAME": "gpu02",
}


def test_workers_given_win_over_the_engine() -> None:
    cluster = multiworker.find_cluster("a:1,b:2", 1, {"TF_CONFIG": '{"cluster": {}}', **SLURM})
    assert (cluster.workers, cluster.index, cluster.source) == (["a:1", "b:2"], 1, "--workers")


def test_tfjob_chief_and_workers_become_one_worker_list_chief_first() -> None:
    config = {
        "cluster": {"chief": ["job-chief-0.ns:2222"], "worker": ["job-worker-0.ns:2222", "job-worker-1.ns:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    cluster = multiworker.find_cluster(None, None, {"TF_CONFIG": json.dumps(config), **SLURM})  # TF_CONFIG first
    assert cluster.workers == ["job-chief-0.ns:2222", "job-worker-0.ns:2222", "job-worker-1.ns:2222"]
    assert cluster.index == 2 and cluster.source == "tf_config" and cluster.detail == "TF_CONFIG (task worker 1)"


@pytest.mark.parametrize(
    "config, message",
    [
        ("{not json", "TF_CONFIG is not JSON"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["p:1"]}, "task": {"type": "worker", "index": 0}}', "has ps tasks"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}', "has evaluator tasks"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "out of range"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}', "must be a list of host:port"),
    ],
)
def test_a_tf_config_that_cannot_work_is_one_clear_usage_error(config: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        multiworker.find_cluster(None, None, {"TF_CONFIG": config})


def test_without_any_engine_the_error_says_the_three_ways() -> None:
    with pytest.raises(UsageError, match=r"run it under srun .*TF_CONFIG.* --workers"):
        multiworker.find_cluster(None, None, {})


def test_slurm_ports_reserved_for_the_step_else_a_block_per_job() -> None:
    assert multiworker.port_base({"SLURM_STEP_RESV_PORTS": "12000-12015", "SLURM_JOB_ID": "7"}) == 12000
    assert multiworker.port_base({"SLURM_JOB_ID": "4242"}) == 20000 + 242 * 16
    assert multiworker.port_base({"SLURM_JOB_ID": "2242"}) == multiworker.port_base({"SLURM_JOB_ID": "4242"})


def _resolver_says(monkeypatch: pytest.MonkeyPatch, workers: list[str], task_id: int) -> None:
    out = json.dumps({"cluster": {"worker": workers}, "task_type": "worker", "task_id": task_id})
    monkeypatch.setattr("envdoctor.runner.run_command", lambda argv, **_kw: CommandResult(list(argv), 0, out + "\n"))


def test_slurm_cluster_from_the_resolvers_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolver_says(monkeypatch, ["gpu01:23872", "gpu02:23872"], 1)
    cluster = multiworker.find_cluster(None, None, SLURM)
    assert cluster.workers == ["gpu01:23872", "gpu02:23872"] and cluster.index == 1
    assert cluster.source == "slurm" and cluster.detail == "Slurm job 4242 step 0"


def test_a_task_the_resolver_places_on_another_node_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # SlurmClusterResolver assumes block distribution: with --distribution=cyclic its rank would be elsewhere.
    _resolver_says(monkeypatch, ["gpu01:23872", "gpu01:23873"], 1)
    with pytest.raises(UsageError, match="runs on gpu02: use Slurm's default block distribution"):
        multiworker.find_cluster(None, None, SLURM)


def test_a_resolver_that_fails_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "envdoctor.runner.run_command",
        lambda argv, **_kw: CommandResult(
            list(argv), 1, "", "Traceback ...\nRuntimeError: SLURM_PROCID not found in environment\n"
        ),
    )
    with pytest.raises(UsageError, match="could not resolve this Slurm step: RuntimeError: SLURM_PROCID"):
        multiworker.find_cluster(None, None, SLURM)

"""The Kubernetes manifests in templates/k8s/, validated against the Kubernetes OpenAPI schema (strict: an unknown
or misspelt field fails) by kubernetes-validate, and held to what the README promises of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install '.[test]'")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install '.[test]'")

K8S = Path(__file__).resolve().parent.parent / "templates" / "k8s"
KUBERNETES = "1.33.0"  # a supported Kubernetes release; the schemas ship inside kubernetes-validate


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def validate(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_the_daemonset_is_valid_and_reaches_every_gpu_of_every_gpu_node() -> None:
    resources = documents("envdoctor-check-daemonset.yaml")
    for resource in resources:
        validate(resource)
    daemonset = next(r for r in resources if r["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia" and pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["hostNetwork"] is True  # the report's host name is the node's
    (container,) = pod["containers"]
    assert "envdoctor check --json" in container["args"][0]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"} in container["env"]
    assert "nvidia.com/gpu" not in str(container["resources"])  # no GPU held away from the training jobs


def test_the_tfjob_pod_template_is_a_valid_pod_that_takes_its_cluster_from_tf_config() -> None:
    (tfjob,) = documents("envdoctor-smoke-tfjob.yaml")
    assert (tfjob["apiVersion"], tfjob["kind"]) == ("kubeflow.org/v1", "TFJob")  # a CRD: no core schema
    worker = tfjob["spec"]["tfReplicaSpecs"]["Worker"]
    # The TFJob's own fields are the operator's; the pod it makes from the template is core Kubernetes.
    validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "envdoctor-smoke-worker-0"},
            **{"spec": worker["template"]["spec"]},
        }
    )
    (container,) = worker["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow" and worker["replicas"] == 2
    assert container["command"][:4] == ["envdoctor", "smoke-test", "--strategy", "multi-worker"]
    assert "--workers" not in container["command"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_the_validator_does_reject_a_misspelt_field() -> None:
    daemonset = next(r for r in documents("envdoctor-check-daemonset.yaml") if r["kind"] == "DaemonSet")
    daemonset["spec"]["template"]["spec"]["nodeSelectr"] = daemonset["spec"]["template"]["spec"].pop("nodeSelector")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(daemonset)

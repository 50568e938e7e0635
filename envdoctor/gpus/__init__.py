"""Choosing GPUs for TensorFlow: CUDA_VISIBLE_DEVICES semantics, the SPEC of env/run, auto:N, shell quoting."""

from envdoctor.gpus.spec import environment_for, parse_spec
from envdoctor.gpus.visible import VisibleResolution, resolve_visible_devices

__all__ = ["environment_for", "parse_spec", "resolve_visible_devices", "VisibleResolution"]

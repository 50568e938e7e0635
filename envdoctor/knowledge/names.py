"""The one distribution-name normaliser: the probe that lists what is installed and the checks that judge it compare
names through here, so "tensorflow_cpu", "TensorFlow-CPU" and "tensorflow.cpu" are one distribution everywhere."""

from __future__ import annotations

import re


def dist_name(name: str) -> str:
    """A distribution's canonical name (PEP 503): "tensorflow_cpu" and "TensorFlow-CPU" are "tensorflow-cpu"."""
    # PEP 503's own expression, not packaging.utils.canonicalize_name: packaging.utils imports packaging.tags and
    # logging, which `envdoctor check` needs nowhere else: ~5 ms of its start-up (python -X importtime, best of six
    # runs), for this one line.
    return re.sub(r"[-_.]+", "-", name).lower()

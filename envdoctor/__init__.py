"""envdoctor: get a machine ready for deep learning with TensorFlow, and prove that it is ready."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "configure_tensorflow"]


def configure_tensorflow(*args: Any, **kwargs: Any) -> Any:
    """Select GPUs and memory growth in a running TensorFlow (see envdoctor.tfconfig)."""
    from envdoctor.tfconfig import configure_tensorflow as _configure

    return _configure(*args, **kwargs)

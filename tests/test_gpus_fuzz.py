"""Fuzzing: whatever CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER or SPEC text comes in, nothing but UsageError escapes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.errors import UsageError
from envdoctor.gpus import environment_for, resolve_visible_devices
from envdoctor.gpus.snapshot import load_gpus

FIX = Path(__file__).parent / "fixtures" / "gpus"
MACHINES = [load_gpus(FIX / f"{n}.json") for n in ("a100-mig", "theano-8400gs-titan", "h100-busy")] + [[]]
TOKENS = st.sampled_from(["0", "1", "2", "3", "9", "-1", "+0", " 1 ", "GPU-", "GPU-f", "GPU-6", "MIG-4", "MIG-ed3d",
                          "2:0", "3:1", "0:0", "x", "", "all", "none", "auto:1", "GPU-956348bc", "1abc"])
VALUES = st.one_of(st.none(), st.text(max_size=40), st.lists(TOKENS, max_size=5).map(",".join))


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from(MACHINES), st.sampled_from([None, "", "PCI_BUS_ID", "FASTEST_FIRST", "x"]))
def test_resolution_never_raises(value, gpus, order):
    res = resolve_visible_devices(value, gpus, order)
    assert len({d.uuid for d in res.devices}) == len(res.devices)
    assert [d.ordinal for d in res.devices] == list(range(len(res.devices)))


@settings(max_examples=300, deadline=None)
@given(VALUES.map(lambda v: v or ""), st.sampled_from(MACHINES[:-1] + [[]]))
def test_spec_raises_only_usage_errors(spec, gpus):
    if spec.startswith("auto"):
        return  # auto:N writes pick records; covered in test_gpus_cli.py with a private lock directory
    try:
        env = environment_for(spec, gpus)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"

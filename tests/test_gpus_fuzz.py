"""Fuzzing: whatever CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER or SPEC text comes in, nothing but UsageError escapes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.errors import UsageError
from envdoctor.gpus import environment_for, resolve_visible_devices
from envdoctor.gpus.snapshot import load_gpus

FIX = Path(__file__).parent / "fixtures" / "gpus"
MACHINES = [load_gpus(FIX / f"{n}.json") for n in ("a100-mig", "theano-8400gs-titan", "h100-busy")] + [[]]
TOKENS = st.sampled_from(
    [
        "0",
        "1",
        "2",
        "3",
        "9",
        "-1",
        "+0",
        " 1 ",
        "GPU-",
        "GPU-f",
        "GPU-6",
        "MIG-4",
        "MIG-ed3d",
        "2:0",
        "3:1",
        "0:0",
        "x",
        "",
        "all",
        "none",
        "auto:1",
        "GPU-956348bc",
        "1abc",
    ]
)
# scripts/fuzz-long.sh sets ENVDOCTOR_FUZZ_EXAMPLES for a longer run than CI's.
EXAMPLES = int(os.environ.get("ENVDOCTOR_FUZZ_EXAMPLES", "0")) or None
VALUES = st.one_of(st.none(), st.text(max_size=40), st.lists(TOKENS, max_size=5).map(",".join))


@settings(max_examples=EXAMPLES or 300, deadline=None)
@given(VALUES, st.sampled_from(MACHINES), st.sampled_from([None, "", "PCI_BUS_ID", "FASTEST_FIRST", "x"]))
def test_resolution_never_raises(value, gpus, order):
    res = resolve_visible_devices(value, gpus, order)
    assert len({d.uuid for d in res.devices}) == len(res.devices)
    assert [d.ordinal for d in res.devices] == list(range(len(res.devices)))


@settings(max_examples=EXAMPLES or 300, deadline=None)
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


DIGITS = st.text("0123456789", min_size=1, max_size=6000)
HUGE_SPECS = st.builds(
    lambda prefix, digits, tail: prefix + digits + tail,
    st.sampled_from(["", "auto:", "0:", "GPU-", "-", "+", "0,"]),
    DIGITS,
    st.sampled_from(["", ":0", ",1", " ", "\u0661"]),
)


@settings(max_examples=EXAMPLES or 200, deadline=None)
@given(
    st.one_of(VALUES.map(lambda v: v or ""), HUGE_SPECS, TOKENS.map(lambda t: "auto:" + t)), st.sampled_from(MACHINES)
)
def test_any_spec_auto_included_gives_a_result_or_one_short_usage_error(spec, gpus):
    with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {"XDG_RUNTIME_DIR": tmp}):
        try:
            env = environment_for(spec, gpus)
        except UsageError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)[:400]
            return
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"

"""What `smoke-test --tune` measured here before: its cached result for this CPU model and TensorFlow.

Only on the live host: under --root the cache is this machine's, not the inspected one's."""

from __future__ import annotations

from envdoctor.facts import Facts
from envdoctor.probes import ProbeContext


def probe(ctx: ProbeContext, facts: Facts) -> None:
    if not ctx.host or not facts.tensorflow.version:
        return
    from envdoctor.smoke.tunecache import tune_facts  # standard library only: no numpy, no TensorFlow

    facts.tune = tune_facts(facts.cpu.model, facts.tensorflow.version)

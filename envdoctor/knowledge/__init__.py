"""What envdoctor knows about the world, as typed readers over recipes/: one home for each fact.

The layer below checks, build-tf and smoke-test: they import facts about TensorFlow releases, CUDA, drivers and
oneDNN from here, never from each other (checks/gpu.py used to be the CUDA library of four other modules).
Modules here read recipes/ and nothing else: no probe, no Facts, no findings.
"""

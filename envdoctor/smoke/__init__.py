"""envdoctor smoke-test: train CIFAR-10 for real, measure it, prove the setup.

data (sources, cache, loaders), models, pipeline (tf.data), train (the training child process), evalproc (the
concurrent evaluator process), child (what both children share: the event stream, dying with the parent),
multiworker (TF_CONFIG), session (the parent: environment, children, verdict),
report (progress, summary, JSON). Nothing here imports TensorFlow at module level.
"""

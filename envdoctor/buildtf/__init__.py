"""`envdoctor build-tf`: plan (plan.py), CPU flags and their compile probe (flags.py), the recipe directory
(render.py, templates/build_tf/) and running it with a diagnosis (runner.py). Data: recipes/tf_build.json and
recipes/build_failures.json."""

"""`envdoctor fleet`: many nodes' `check --json` / `check --save` reports in one table, with drift marked.

The same three steps as `check`: facts (each report, read with the bounded JSON loader: node.py, load.py), then
judgement (majority, drift, the gate of --expect: judge.py), then rendering (render.py, and the HTML template in
templates/fleet/). Nothing here imports TensorFlow or reads the machine it runs on.
"""

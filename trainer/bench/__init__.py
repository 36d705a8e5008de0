"""Measures of the trainer: `python -m trainer.bench` times the training step.

speed.py: examples/sec, FLOPs per example (flops.py) and the fraction of the
machine's matrix-multiply peak (peak.py); baseline.py: the loops it compares
with (tutorial.py). Each of curves.py, metric_plot.py and modconv.py is a
tool of its own (`python -m trainer.bench.<name>`). Nothing here imports
TensorFlow, so that `python -m trainer.bench` sets TensorFlow's log level
before it loads (trainer/cli.py).
"""

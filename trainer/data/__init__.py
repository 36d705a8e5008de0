"""Data sources, packed datasets and the sharded input pipeline.

`python -m trainer.data create|inspect` makes and reads packed datasets
(__main__.py). Nothing here imports TensorFlow, so that the tool sets
TensorFlow's log level before it loads (trainer/cli.py).
"""

"""A distributed GAN trainer on TensorFlow 2 and Keras 3.

Importing any module of the package first sets TensorFlow's oneDNN switch,
which TensorFlow reads once, when it is imported: see `ONEDNN_ENV`.
"""

import os
import platform

# TensorFlow turns its oneDNN CPU kernels on by itself only on x86 CPUs with
# AVX-512 VNNI, BF16 or AMX. On other x86 CPUs (AVX2: AMD EPYC, older Xeons)
# they are off, and the training step runs on Eigen's kernels at about half
# the speed (docs/performance.md). The trainer turns them on
# for every x86-64 CPU; an explicit TF_ENABLE_ONEDNN_OPTS in the environment
# (say 0) wins. Elsewhere (ARM, GPUs' host code) TensorFlow's choice stands.
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
if platform.machine().lower() in ("x86_64", "amd64"):
  os.environ.setdefault(ONEDNN_ENV, "1")

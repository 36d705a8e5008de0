r"""Whether a run's loss curves match a reference run's to within noise.

    python -m trainer.bench.curves --reference=runs/f32 \
        --candidate=runs/bf16 --control=runs/f32_seed1

The three are training runs of `trainer.main` (their `train/` TensorBoard
logs). The candidate differs from the reference in one setting (say the
precision); the control differs only in `seed`, so its distance from the
reference is the run-to-run noise. The distance of two curves is the mean,
over the steps both logged, of |a - b| of the logged window means. The
candidate matches when its distance is at most the control's, for every tag.
Prints one JSON line.
"""

import json
import os
import sys

from absl import app
from absl import flags
import numpy as np
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from trainer.errors import UserError

TAGS = ("losses/d", "losses/g")


def read_curve(workdir: str, tag: str) -> dict[int, float]:
  """step -> value of a scalar logged by trainer.main in <workdir>/train.

  Raises:
    UserError: no training log there, or no such scalar in it.
  """
  logdir = os.path.join(workdir, "train")
  if not tf.io.gfile.isdir(logdir):
    raise UserError(f"{workdir} has no training log ({logdir} is missing); "
                    "pass the --workdir of a run of python -m trainer.main")
  events = event_accumulator.EventAccumulator(
      logdir, size_guidance={event_accumulator.TENSORS: 0})
  events.Reload()
  if tag not in events.Tags()["tensors"]:
    raise UserError(f"the training log in {logdir} has no scalar {tag!r}")
  return {event.step: float(tf.make_ndarray(event.tensor_proto))
          for event in events.Tensors(tag)}


def distance(a: dict[int, float], b: dict[int, float]) -> float:
  """Mean |a - b| over the steps both curves have.

  Raises:
    UserError: the curves share no step.
  """
  steps = sorted(set(a) & set(b))
  if not steps:
    raise UserError("the runs logged no common step; train them with the "
                    "same train.log_every")
  return float(np.mean([abs(a[s] - b[s]) for s in steps]))


def compare(reference: str, candidate: str, control: str,
            tags: tuple[str, ...] = TAGS) -> dict:
  """The distances of candidate and control from the reference, per tag."""
  record = {"reference": reference, "candidate": candidate,
            "control": control, "tags": {}}
  for tag in tags:
    ref = read_curve(reference, tag)
    cand, ctrl = read_curve(candidate, tag), read_curve(control, tag)
    record["tags"][tag] = {
        "steps": len(set(ref) & set(cand)),
        "candidate_distance": distance(ref, cand),
        "control_distance": distance(ref, ctrl)}
  record["within_noise"] = all(
      t["candidate_distance"] <= t["control_distance"]
      for t in record["tags"].values())
  return record


_REFERENCE = flags.DEFINE_string("reference", None, "The reference run.")
_CANDIDATE = flags.DEFINE_string("candidate", None,
                                 "The run with one setting changed.")
_CONTROL = flags.DEFINE_string("control", None,
                               "The reference's config with another seed.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    print(json.dumps(compare(_REFERENCE.value, _CANDIDATE.value,
                             _CONTROL.value)))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["reference", "candidate", "control"])
  app.run(main)

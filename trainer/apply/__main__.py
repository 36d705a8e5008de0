r"""Uses a trained generator: `python -m trainer.apply <task> --workdir=<run>`.

Tasks: sample, interpolate, inpaint, superres, transfer, mix, directions,
edit, export (see trainer/apply/tasks.py, trainer/apply/latent_tasks.py and
docs/apply.md). The run's own config.json says what model it is; results go
to <workdir>/apply/<task> (export: <workdir>/export/step_<step>) or
--output_dir. Ctrl-C stops at once: each file is written whole or not at
all.
"""

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import flags
from absl import logging

from trainer import signals
from trainer.apply import directions as directions_lib
from trainer.apply import editing as editing_lib
from trainer.apply import inversion
from trainer.apply import run as run_lib
from trainer.apply import tasks
from trainer.errors import UserError

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "", "Use this checkpoint (e.g. <workdir>/checkpoints/"
    "ckpt-1000) instead of the latest.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", "", "Where to write; default <workdir>/apply/<task>, and "
    "<workdir>/export/step_<step> for export.")
_NUM = flags.DEFINE_integer(
    "num", 16, "sample, edit: images; interpolate: paths; mix: pairs; "
    "inpaint, superres, transfer: images taken from the data.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the latents (sample, interpolate), of the inversion's "
    "random starts and of random_boxes masks.")
_LABEL = flags.DEFINE_integer(
    "label", -1, "Class-conditional models: the class to draw (sample, "
    "interpolate) or of --input; -1: every class in turn, or the data's "
    "labels.")
_TRUNCATION = flags.DEFINE_float(
    "truncation", 0.0, "sample, interpolate, mix: redraw latent values "
    "beyond +-t (the truncation trick in z: better images, less variety); "
    "0: off.")
_PSI = flags.DEFINE_float(
    "psi", 1.0, "sample, interpolate, mix: truncation in w, "
    "w_avg + psi (w - w_avg), in [0, 1]; 1: off, 0: the average w's image. "
    "Needs a mapping network (stylegan2).")
_NOISE_MODE = flags.DEFINE_string(
    "noise_mode", "random", "sample, interpolate: StyleGAN2's noise inputs, "
    "as the reference's generate.py takes them: random (drawn per image "
    "from its z, as G trains), const (one fixed draw per layer) or none.")
_TRUNCATION_CUTOFF = flags.DEFINE_integer(
    "truncation_cutoff", None, "With --psi: truncate only the first this "
    "many ws (the coarse styles); default all.")
_SPACE = flags.DEFINE_string(
    "space", inversion.Settings.space, "Inversion (inpaint, superres, "
    "transfer, mix of images): the latent space searched, z, w (one w for "
    "every layer, from w_avg) or w+ (one w per layer); w and w+ need a "
    "mapping network (stylegan2).")
_CUTOFF = flags.DEFINE_integer(
    "cutoff", None, "mix: ws[:cutoff] (coarse styles) come from the first "
    "latent, the others from the second (--layers=cutoff:); in [1, num_ws "
    "- 1], default min(4, num_ws - 1).")
_MIX_INPUT = flags.DEFINE_string(
    "mix_input", "", "mix: the image (PNG or JPEG) whose ws --layers (or "
    "from --cutoff on) are taken into --input's, or a folder of them paired "
    "with --input's folder in name order; without both, --num random pairs "
    "are mixed.")
_MIX_LABEL = flags.DEFINE_integer(
    "mix_label", -1, "mix, class-conditional models: the class of "
    "--mix_input when it is not --label's (each image is inverted under its "
    "own class); -1: --label.")
_FRAMES = flags.DEFINE_integer(
    "frames", 10, "interpolate: images per path, both ends included.")
_INPUT = flags.DEFINE_string(
    "input", "", "inpaint, superres, transfer, mix: a PNG or JPEG image; "
    "without it, --num images of the data from --first are used (mix: --num "
    "random pairs). edit, mix: an image or a folder of them, inverted; "
    "without it, --num random latents.")
_SOURCE = flags.DEFINE_string(
    "source", "", "Data source of the images (docs/data.md); "
    "default the run's data.source.")
_SPLIT = flags.DEFINE_string(
    "split", "", "Split of --source, e.g. 'test[9000:]' for images the run "
    "did not train on; default the run's data.split.")
_FIRST = flags.DEFINE_integer(
    "first", 0, "Index of the first image taken from the split.")
_MASK = flags.DEFINE_string(
    "mask", "center", "inpaint: center, left_half, random_boxes, or a mask "
    "PNG whose white pixels are the hole.")
_FACTOR = flags.DEFINE_integer(
    "factor", 4, "superres: the upscaling factor, 2 or 4.")
_RESIZE = flags.DEFINE_bool(
    "resize", False, "Resize (and convert the channels of) --input images "
    "and mask PNGs that do not fit the model, instead of refusing them.")
_STEPS = flags.DEFINE_integer(
    "steps", inversion.Settings.steps, "Inversion: Adam steps per start.")
_RESTARTS = flags.DEFINE_integer(
    "restarts", inversion.Settings.restarts,
    "Inversion: random starts per image; the best fit is kept.")
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", inversion.Settings.learning_rate,
    "Inversion: Adam's learning rate on the latent.")
_MAX_LATENTS = flags.DEFINE_integer(
    "max_latents", inversion.Settings.max_latents,
    "Inversion: latents (images x restarts) optimised at once, which bounds "
    "the memory; more images are done in groups.")
_PRIOR_WEIGHT = flags.DEFINE_float(
    "prior_weight", inversion.Settings.prior_weight,
    "Inversion: weight of mean(u^2), which keeps the latent typical: u is z, "
    "or (w - w_avg) / scale in w and w+.")

_DIRECTIONS = directions_lib.Settings()
_METHOD = flags.DEFINE_string(
    "method", _DIRECTIONS.method, "directions: sefa (closed-form "
    "factorization of the weights), ganspace (PCA of sampled latents) or "
    "labels (a boundary between latents with and without an attribute).")
_NUM_DIRECTIONS = flags.DEFINE_integer(
    "num_directions", _DIRECTIONS.num_directions, "directions (sefa, "
    "ganspace): how many to keep, the strongest first (at most the "
    "latent's size).")
_LAYERS = flags.DEFINE_string(
    "layers", _DIRECTIONS.layers, "directions, edit, mix: a:b, the ws "
    "[a, b) of a mapping network whose layers sefa factorizes and edits "
    "move (default all), or that mix takes from the second latent "
    "(--mix_input; default from --cutoff on).")
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples", _DIRECTIONS.num_samples, "directions (ganspace, labels): "
    "latents sampled.")
_STRENGTH = flags.DEFINE_float(
    "strength", _DIRECTIONS.strength, "directions: grid.png shows strengths "
    "from -s to s; strength 1 moves one coordinate's typical spread (1 in "
    "z; in w, the root mean square of w - w_avg).")
_STRENGTHS = flags.DEFINE_list(
    "strengths", [str(s) for s in _DIRECTIONS.strengths], "edit: the first "
    "and the last strength, as --strength measures them.")
_STRENGTH_STEPS = flags.DEFINE_integer(
    "strength_steps", _DIRECTIONS.strength_steps, "directions, edit: "
    "strengths per row, both ends included (odd: 0 is among them).")
_CLASSIFIER = flags.DEFINE_string(
    "classifier", _DIRECTIONS.classifier, "directions (labels): what scores "
    "the samples: mnist (the project's MNIST classifier; the attribute is a "
    "digit), a measure of the image (ink, slant or width; the samples above "
    "their median have the attribute) or a .keras model file.")
_ATTRIBUTE = flags.DEFINE_integer(
    "attribute", _DIRECTIONS.attribute, "directions (labels): the "
    "classifier's output read (mnist: the digit).")
_THRESHOLD = flags.DEFINE_float(
    "threshold", _DIRECTIONS.threshold, "directions (labels): a sample has "
    "the attribute when that output is above it.")
_POSITIVE = flags.DEFINE_string(
    "positive", "", "directions (labels): a folder of images with the "
    "attribute, inverted (with --negative, instead of a classifier).")
_NEGATIVE = flags.DEFINE_string(
    "negative", "", "directions (labels): a folder of images without it.")
_CONDITION = flags.DEFINE_string(
    "condition", "", "directions (labels): directions projected out of the "
    "one found, so that editing along it keeps their attributes: "
    "comma-separated <directions.npy>[:index] and `classes` (a boundary "
    "per digit by the MNIST classifier: the edit keeps the digit).")
_DIRECTION = flags.DEFINE_string(
    "direction", "", "edit: <directions.npy>[:index] (default index 0).")


def _directions_settings() -> directions_lib.Settings:
  return directions_lib.Settings(
      method=_METHOD.value, num_directions=_NUM_DIRECTIONS.value,
      layers=_LAYERS.value, num_samples=_NUM_SAMPLES.value,
      strength=_STRENGTH.value,
      strengths=editing_lib.strengths_of(_STRENGTHS.value),
      strength_steps=_STRENGTH_STEPS.value, classifier=_CLASSIFIER.value,
      attribute=_ATTRIBUTE.value, threshold=_THRESHOLD.value,
      positive=_POSITIVE.value, negative=_NEGATIVE.value,
      condition=_CONDITION.value, direction=_DIRECTION.value)


def main(argv) -> None:
  with signals.interrupt_as_line(
      "stopped by Ctrl-C before the task finished; run the same command to "
      f"do it again: {signals.command()}"), cli.errors_as_messages():
    if len(argv) != 2:
      raise UserError("give one task: python -m trainer.apply <task> "
                      f"--workdir=<run>; tasks: {', '.join(tasks.TASKS)}")
    task = tasks.TASKS.get(argv[1])
    if not flags.FLAGS["workdir"].present:
      raise UserError("--workdir is required: the run to use")
    workdir = cli.workdir()
    strategy = cli.create_strategy()
    run = run_lib.load(workdir, strategy, _CHECKPOINT.value)
    options = tasks.Options(
        output_dir=_OUTPUT_DIR.value or tasks.default_output_dir(
            workdir, argv[1], run.step),
        num=_NUM.value, seed=_SEED.value, label=_LABEL.value,
        truncation=_TRUNCATION.value, psi=_PSI.value,
        truncation_cutoff=_TRUNCATION_CUTOFF.value,
        noise_mode=_NOISE_MODE.value, cutoff=_CUTOFF.value,
        mix_input=_MIX_INPUT.value, mix_label=_MIX_LABEL.value,
        frames=_FRAMES.value,
        input=_INPUT.value, source=_SOURCE.value, split=_SPLIT.value,
        first=_FIRST.value, mask=_MASK.value, factor=_FACTOR.value,
        resize=_RESIZE.value, inversion=inversion.Settings(
            steps=_STEPS.value, restarts=_RESTARTS.value,
            learning_rate=_LEARNING_RATE.value,
            max_latents=_MAX_LATENTS.value,
            prior_weight=_PRIOR_WEIGHT.value, space=_SPACE.value),
        directions=_directions_settings())
    report = task(run, strategy, options)
    logging.info("%s of step %d written to %s", argv[1], run.step,
                 options.output_dir)
    print(tasks.summary(report))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)

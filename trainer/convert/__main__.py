r"""Converts network pickles: `python -m trainer.convert inspect|create`.

    python -m trainer.convert inspect --pickle=network-snapshot-025000.pkl
    python -m trainer.convert create --pickle=network-snapshot-025000.pkl \
        --workdir=runs/ffhq_converted
    python -m trainer.apply sample --workdir=runs/ffhq_converted

`inspect` prints what the pickle holds, what converts into what, and our
config for it, after loading it into our networks; it writes nothing.
`create` writes a new workdir (config.json and a checkpoint of step 0); an
existing non-empty --workdir is refused before anything is read. Nothing
in a pickle ever runs: it is read as data (trainer/convert/pickles.py).
See docs/convert.md.
"""

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import flags

from trainer import signals
from trainer.convert import conversion

_PICKLE = flags.DEFINE_string(
    "pickle", None, "The network pickle: a StyleGAN2-ADA or StyleGAN3 "
    "(--cfg=stylegan2) snapshot, a TensorFlow StyleGAN2 one (config-e/f), or "
    "an R3GAN one.")

_COMMANDS = ("inspect", "create")


def main(argv) -> None:
  with signals.interrupt_as_line(
      "stopped by Ctrl-C; nothing was written"), cli.errors_as_messages():
    command, *args = argv[1:] or [""]
    if command not in _COMMANDS or args or not _PICKLE.value:
      raise app.UsageError(
          f"the command is one of {', '.join(_COMMANDS)}, with --pickle "
          "(create: and --workdir), and no other arguments")
    if command == "inspect":
      pickled, kind = conversion.read(_PICKLE.value)
      print(conversion.contents(pickled, kind))
      plan = conversion.plan_of(pickled, kind)
      conversion.check(plan)
      print(conversion.describe(plan))
      return
    if not flags.FLAGS["workdir"].present:
      raise app.UsageError("create takes --workdir: the new workdir")
    workdir = cli.workdir()
    conversion.check_new_workdir(workdir)
    plan = conversion.plan_of(*conversion.read(_PICKLE.value))
    checkpoint = conversion.create(plan, workdir, cli.create_strategy())
    print(conversion.summary(plan, workdir, checkpoint))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)

"""Penalties by name (`penalties.names`); trainer/penalties/base.py says
what a penalty is.

Each module below registers its penalties when imported: a new penalty is a
new module and one line here.
"""

from trainer.penalties import gradient  # pylint: disable=unused-import  (r1, r2, gp)
from trainer.penalties import path_length  # pylint: disable=unused-import  (pl)

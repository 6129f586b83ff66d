"""The pre-trained audio model shipped inside the package.

`path()` is its directory (an exported run, `checkpoints.export`: the run's
config, parameters and step), what `shuffle_learn.embed.load_embedder()` and
`shuffle_learn.hear.load_model()` read when given no path. How it was trained
and what it scores: docs/results/README.md, "The shipped model"
(trained by `experiments/configs/pretrained.py`).
"""

from __future__ import annotations

import os

DIRECTORY = os.path.join(os.path.dirname(__file__), "audio_cfn")


def path() -> str:
  """The shipped model's directory.

  Raises:
    FileNotFoundError: the package was installed without it.
  """
  if not os.path.exists(os.path.join(DIRECTORY, "params.msgpack")):
    raise FileNotFoundError(f"the shipped model is missing from {DIRECTORY}: reinstall shuffle_learn.")
  return DIRECTORY

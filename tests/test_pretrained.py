"""The shipped model (`shuffle_learn.pretrained`): it loads with no argument, is the run its config describes, and embeds as it did when it was exported."""

import os

import numpy as np

from experiments.configs import pretrained as pretrained_config
from shuffle_learn import checkpoints
from shuffle_learn import embed
from shuffle_learn import pretrained


def test_the_shipped_model_is_the_run_of_its_config():
  directory = pretrained.path()
  assert os.path.getsize(os.path.join(directory, checkpoints.PARAMS_FILE)) < 2 * 2**20
  saved = checkpoints.flat(checkpoints.read_config(directory))
  assert saved == checkpoints.flat(pretrained_config.get_config())


def test_the_shipped_model_embeds_a_tone_as_when_it_was_exported():
  embedder = embed.load_embedder()
  assert embedder.num_samples == 16000 and embedder.step == 12000
  tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
  vector = embedder(tone[None])[0]
  # Recorded from the exported model (docs/results/README.md, "The shipped model"); a change of the
  # parameters file, the front end or the CFN that moves the shipped embedding fails here.
  assert vector.shape == (1280,) and int(vector.argmax()) == 221
  np.testing.assert_allclose(vector[:6], [0.600935, 0.0, 0.260436, 0.225817, 0.59182, 0.62916], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(vector), 40.122723, rtol=1e-4)

"""Tiny config: tests and smoke runs, a few seconds on a 2-core CPU.

Command:
  python -m shuffle_learn.train --config experiments/configs/tiny.py --workdir /tmp/cfn_tiny

TimGM6mb only, 3 programs at 2 velocities (about 200 train notes), 0.5 s of
audio, a 32-bin log-mel in 4 bands, the TINY CFN, batch 8, 60 steps. Expected:
under 30 s with compilation; validation partial-ranks accuracy clearly above
the chance level 1/4 (the tests check it).
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.data.soundfonts = "TimGM6mb"
  config.data.programs = (0, 40, 73)       # Piano, violin, flute.
  config.data.velocities = (75, 127)
  config.data.num_threads = 1
  config.features.seconds = 0.5
  config.features.num_mel_bins = 32
  config.pretext.n_rows = 4
  config.model.size = "tiny"
  config.model.normalize_patches = True
  config.train.batch_size = 8
  config.train.learning_rate = 3e-3
  config.train.warmup_steps = 5
  config.train.num_steps = 60
  config.train.log_every = 10
  config.train.eval_every = 20
  config.train.eval_examples = 64
  config.train.checkpoint_every = 30
  config.train.progress = False
  return config

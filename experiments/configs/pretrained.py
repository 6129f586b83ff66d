"""The shipped model's training config (`shuffle_learn.pretrained`, exported from this run).

Command:
  python -m shuffle_learn.train --config experiments/configs/pretrained.py --workdir /tmp/pretrained

then, in Python, `checkpoints.export("/tmp/pretrained", "shuffle_learn/pretrained/audio_cfn")`.

The default CFN (`default.py`: `small_bands`, 10 frequency bands of a 64-bin
log-mel of 1 s clips, `perturbed_fy` at sigma 2.0, batch 32, Adam 1e-4 after
100 warm-up steps) trained 4x longer (12,000 steps) with the rate decaying to
0 by a cosine, on `audio_mix`: the TimGM6mb notes, the synthetic spoken words
and 1 s sound-event mixtures, up to 4,000 train clips of each, so that the
model hears more than notes. The search that chose it
(`pretrained_search.py`) and the model's scores: docs/results/README.md,
"The shipped model". About 8 minutes on the 2-core CPU.
"""

from ml_collections import config_dict

from experiments.configs import default


def get_config() -> config_dict.ConfigDict:
  config = default.get_config()
  config.data.source = "audio_mix"
  config.data.mix = ("gm_notes", "spoken_words", "sound_events")
  config.data.mix_examples = (4000, 200, 200)  # Clips per source and split (train, valid, test).
  config.data.num_clips = (4000, 200, 200)     # sound_events: mixtures per split.
  config.data.clip_seed = 0
  config.train.num_steps = 12000
  config.train.schedule = "cosine"
  config.train.eval_every = 1000
  config.train.checkpoint_every = 1000
  return config

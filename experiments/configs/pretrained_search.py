"""What to train the shipped model on: the main job as a sweep over candidate pre-training changes.

Command:
  python -m experiments.nsynth --config experiments/configs/pretrained_search.py --workdir /tmp/search

Every point pre-trains the default CFN (`default.py`: `small_bands`, 10
frequency bands, `perturbed_fy` at sigma 2.0, 1 s clips) and probes it as the
main job does (the 3-layer MLP on the pooled convolutional features, N = 1000
of the TimGM6mb notes, 3 seeds), beside its untrained CFN and log-mel
statistics:
  default         the main job's 3000 steps at a constant rate (the reference);
  cosine_12k      12,000 steps (4x) with the rate decaying to 0 by a cosine;
  mix_cosine_12k  as cosine_12k on `audio_mix`: the notes, the spoken words
                  and 1 s sound-event mixtures (their train splits, up to
                  4,000 clips each), so the model hears more than notes.
The chosen point is `pretrained.py`; its checkpoint, exported, is the shipped
model (`shuffle_learn.pretrained`). Results: docs/results/pretrained.
"""

from ml_collections import config_dict

from experiments.configs import nsynth


def get_config() -> config_dict.ConfigDict:
  config = nsynth.get_config()
  data = config.pretrain.data
  data.mix = ("gm_notes", "spoken_words", "sound_events")
  data.mix_examples = (4000, 200, 200)     # audio_mix: clips per source and split (train, valid, test).
  data.num_clips = (4000, 200, 200)        # sound_events: mixtures per split.
  data.clip_seed = 0
  config.eval.data = config_dict.ConfigDict({"source": "gm_notes"})  # The labelled notes, whatever the point trains on.
  config.sweep.fields = ("data.source", "train.num_steps", "train.schedule")
  config.sweep.points = (("gm_notes", 3000, "constant"), ("gm_notes", 12000, "cosine"),
                         ("audio_mix", 12000, "cosine"))
  config.sweep.names = ("default", "cosine_12k", "mix_cosine_12k")
  config.pretrain.train.eval_every = 1000
  config.pretrain.train.checkpoint_every = 1000
  return config

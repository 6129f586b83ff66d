"""The audio suite's full table: every row of the peer paper's Table 1 and its Table 2 alternative, on one encoder.

Command:
  python -m experiments.audio_suite --config experiments/configs/audio_suite_full.py --workdir /tmp/audio_suite_full

`audio_suite.py` with more clips and more methods: 6,000 clips per source in
the pre-training mix (the same 3,000 steps of 32), and as methods the permutation objectives
(`perturbed_fy`, `fast_soft_rank`, `fixed_permutation`), COLA (`cola`), the
paper's ablation rows (`clip_frame`: L_clip + L_frame; `clip_pitch`: L_clip +
L_pitch), all three losses (`multi_sampling`) and all three with cosine
similarity (`multi_sampling_cosine`, Table 2), every one on the CFN's `small`
backbone with the same budget; larger pitch and event sets (N = 2,000 notes,
400 mixtures; 2,000 and 400 test).

The peers on the paper's own encoder, EfficientNet-B0: `audio_suite_b0.py`
(about 8 s per step on the 2-core CPU, so meant for an accelerator).
"""

from ml_collections import config_dict

from experiments.configs import audio_suite


def get_config() -> config_dict.ConfigDict:
  config = audio_suite.get_config()
  pretrain = config.pretrain
  pretrain.data.mix_examples = (6000, 200, 200)
  pretrain.data.num_clips = (6000, 200, 200)
  config.methods = ("perturbed_fy", "fast_soft_rank", "fixed_permutation", "cola", "clip_frame", "clip_pitch",
                    "multi_sampling", "multi_sampling_cosine")
  config.variants = config_dict.ConfigDict({
      "clip_frame": {"pretext": {"loss": "multi_sampling", "beta": 0.0}},
      "clip_pitch": {"pretext": {"loss": "multi_sampling", "alpha": 0.0}},
      "multi_sampling_cosine": {"pretext": {"loss": "multi_sampling", "similarity": "cosine"}},
  })
  config.eval.pitch.n_train = 2000
  config.eval.pitch.pool_examples = 5000
  config.eval.pitch.test_examples = 2000
  config.eval.events.data.num_clips = (400, 20, 400)
  config.eval.events.n_train = 400
  config.eval.events.pool_examples = 400
  config.eval.events.test_examples = 400
  return config

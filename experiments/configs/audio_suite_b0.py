"""The audio suite with the peers on the paper's encoder, EfficientNet-B0: for an accelerator.

Command:
  python -m experiments.audio_suite --config experiments/configs/audio_suite_b0.py --workdir /tmp/audio_suite_b0

`audio_suite_full.py`'s budget, data and tasks, with every row of the peer
paper's Table 1 on EfficientNet-B0 (`cola_b0`, `clip_frame_b0`,
`clip_pitch_b0`, `multi_sampling_b0`: the paper's encoder, 4.0 M parameters
without its classifier) beside the permutation objectives on the CFN
(`perturbed_fy`, `fast_soft_rank`) and the same peers on the CFN's backbone
(`cola`, `multi_sampling`), so that encoder and objective can be told apart.
A B0 step takes about 8 s on the 2-core CPU (`docs/results/README.md`).
"""

from ml_collections import config_dict

from experiments.configs import audio_suite_full


def get_config() -> config_dict.ConfigDict:
  config = audio_suite_full.get_config()
  b0 = {"model": {"size": "efficientnet_b0"}}
  config.variants = config_dict.ConfigDict({
      **config.variants.to_dict(),
      "cola_b0": {"pretext": {"loss": "cola"}, **b0},
      "clip_frame_b0": {"pretext": {"loss": "multi_sampling", "beta": 0.0}, **b0},
      "clip_pitch_b0": {"pretext": {"loss": "multi_sampling", "alpha": 0.0}, **b0},
      "multi_sampling_b0": {"pretext": {"loss": "multi_sampling"}, **b0},
  })
  config.methods = ("perturbed_fy", "fast_soft_rank", "cola", "multi_sampling", "cola_b0", "clip_frame_b0",
                    "clip_pitch_b0", "multi_sampling_b0")
  return config

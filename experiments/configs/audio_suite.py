"""The audio suite's default: permutations against the contrastive peers, sized for 20 minutes on a 2-core CPU.

Command:
  python -m experiments.audio_suite --workdir /tmp/audio_suite

Pre-trains `perturbed_fy`, `fast_soft_rank`, `cola` and `multi_sampling` with
the same budget (batch 32, `pretrain.train.num_steps` steps) on the same
unlabelled clips: 2 s of `audio_mix` (notes of gm_notes, words of
spoken_words, mixtures of sound_events; their train splits, up to 2,000 clips
each). Every method uses the CFN's `small` AlexNet backbone: on 10 frequency
bands for the permutation objectives (`CFN.conv_embed` downstream), on whole
0.96 s segments for the peers (their frame embeddings h downstream). Then a
linear probe (the peer paper's protocol) and the 3-layer MLP, 3 seeds, on
three tasks: pitch (gm_notes, 1 s: HEAR nsynth_pitch's pitch and chroma
accuracy, and family / instrument accuracy), spoken words (spoken_words, 1 s,
test voices unseen, 10 labelled clips per word) and sound event detection (sound_events, 4 s mixtures,
onset and segment F1), beside the untrained CFN, the untrained peer
network and log-mel statistics.

The full table (every row of the peer paper's Table 1, EfficientNet-B0, longer
training): `audio_suite_full.py`.

Fields beside `pretrain` (every field of `default.py`, plus the peer
objectives' `pretext.*` and the mix's `data.*`):
  methods     pretext losses or names of `variants`, each pre-trained in its own run.
  variants    name -> fields of `pretrain` replaced (e.g. an ablation row of Table 1).
  baselines   among random_embedding (the CFN untrained), random_sampling_net (the peers'
              network untrained), logmel_baseline, pretrained (the shipped model).
  eval.*      probes, seeds, and per task (eval.pitch, eval.words, eval.events)
              its data (fields of pretrain.data replaced), clip seconds, N,
              the train pool and the test examples.
"""

from ml_collections import config_dict

from experiments.configs import default


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  pretrain = config.pretrain = default.get_config()
  pretrain.data.source = "audio_mix"
  pretrain.data.mix = ("gm_notes", "spoken_words", "sound_events")
  pretrain.data.mix_examples = (2000, 200, 200)  # Clips per source and split (train, valid, test); 0: all.
  pretrain.data.num_clips = (2000, 200, 200)     # sound_events: mixtures generated per split.
  pretrain.data.clip_seed = 0                    # sound_events: the mixtures' seed.
  pretrain.features.seconds = 2.0                # Long enough for two distinct 0.96 s segments.
  pretrain.model.size = "small"
  pretrain.pretext.sigma = 1.0
  # The peer objectives (`shuffle_learn.pretext.sampling`), the paper's settings.
  pretrain.pretext.alpha = 1.0                   # multi_sampling: weight of L_frame.
  pretrain.pretext.beta = 1.0                    # multi_sampling: weight of L_pitch.
  pretrain.pretext.similarity = "bilinear"       # "bilinear" or "cosine" (Table 2).
  pretrain.pretext.temperature = 0.2             # cosine similarity's.
  pretrain.pretext.frame_m = 0                   # L_frame: positives within m frames (the paper's 0).
  pretrain.pretext.min_shift = 0.8               # L_pitch: pitch-shift ratio range.
  pretrain.pretext.max_shift = 1.2
  pretrain.pretext.segment_frames = 96           # Frames per segment (960 ms of hops).
  pretrain.train.num_steps = 3000
  pretrain.train.eval_every = 1000
  pretrain.train.checkpoint_every = 1000

  config.methods = ("perturbed_fy", "fast_soft_rank", "cola", "multi_sampling")
  config.variants = config_dict.ConfigDict()
  config.baselines = ("random_embedding", "random_sampling_net", "logmel_baseline")

  config.eval = config_dict.ConfigDict()
  config.eval.tasks = ("pitch", "words", "events")
  config.eval.probes = ("linear", "mlp")
  config.eval.seeds = 3
  config.eval.embedding = "conv"         # CFN layer for clip tasks: "conv", "fc6" or "fc7".
  config.eval.hidden = 256
  config.eval.epochs = 500               # Full-batch AdamW steps per head.
  config.eval.learning_rate = 3e-3
  config.eval.weight_decay = 1e-4
  config.eval.pitch = config_dict.ConfigDict({
      "data": {"source": "gm_notes"}, "seconds": 1.0, "n_train": 1000, "pool_examples": 2000,
      "test_examples": 1000})
  # 10 clips per word: at N = 1000 every encoder is above 0.92 (docs/results/README.md), too near the ceiling.
  config.eval.words = config_dict.ConfigDict({
      "data": {"source": "spoken_words"}, "seconds": 1.0, "n_train": 100, "pool_examples": 3640,
      "test_examples": 0})
  config.eval.events = config_dict.ConfigDict({
      "data": {"source": "sound_events", "num_clips": (300, 20, 200)}, "seconds": 4.0, "n_train": 200,
      "pool_examples": 200, "test_examples": 200})
  return config

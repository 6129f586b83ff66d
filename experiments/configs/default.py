"""Default config: the CPU main job, pre-training on `gm_notes` with 10 frequency bands.

Command:
  python -m shuffle_learn.train --config experiments/configs/default.py --workdir /tmp/cfn

Tuned for a 2-core CPU, not the paper's settings (those are in `paper.py`):
TimGM6mb notes (it ships with pretty_midi, so every machine has it; add
FluidR3_GM with data.soundfonts="TimGM6mb,FluidR3_GM"), the `small_bands` CFN
(`small` with a first convolution that strides along time only, so the
harmonic spacing inside a 6-bin band survives it), a 64-bin log-mel of the
first second of each note, standardised per example, cut into 10 bands of 6
bins, no per-patch normalisation (it cost 0.08-0.14 family accuracy
downstream, see the README), perturbed Fenchel-Young with noise scale sigma
2.0 (the paper's 0.1 gave +0.005 family accuracy over the untrained CFN and a
worse pitch MSE; with the `small` CFN 1.0 gave +0.030, 2.0 +0.044, 3.0 +0.046,
and `small_bands` at 2.0 +0.054, see the README), Adam at 1e-4 (3e-4 and 5e-5
gave worse embeddings), batch 32, 3000 steps: about 2.6 minutes on the
2-core CPU (19.1 steps/s end to end, `python -m benchmarks.training`).
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.seed = 0

  config.data = config_dict.ConfigDict()
  config.data.source = "gm_notes"          # "gm_notes" or "nsynth" (TFDS).
  config.data.soundfonts = "TimGM6mb"      # gm_notes: comma-separated paths or names; "" for all installed.
  config.data.programs = config_dict.placeholder(tuple)    # gm_notes: GM programs; None for all.
  config.data.pitches = config_dict.placeholder(tuple)     # gm_notes: MIDI pitches; None for each family's range.
  config.data.velocities = (25, 50, 75, 100, 127)          # gm_notes: NSynth's.
  config.data.tfds_config = "full"         # nsynth: "full" or "gansynth_subset".
  config.data.tfds_data_dir = ""           # nsynth: TFDS data_dir; "" for TFDS's default.
  config.data.train_examples = 0           # Pre-train on the first N (shuffled once by seed) train notes; 0: all.
  config.data.num_threads = 1              # grain read threads (1 beats 2 for 1 s clips on 2 cores).
  config.data.worker_count = 0             # grain worker processes (0: read in this process).
  config.data.prefetch = 4                 # batches grain reads ahead.

  config.features = config_dict.ConfigDict()
  config.features.kind = "log_mel"         # "log_mel" or "log_spectrogram" (the paper's 513 bins).
  config.features.seconds = 1.0            # Audio kept from each note's start (NSynth notes are 4 s).
  config.features.num_mel_bins = 64
  config.features.fft_size = 1024
  config.features.normalization = "example"  # "example" or "none".

  config.pretext = config_dict.ConfigDict()
  config.pretext.loss = "perturbed_fy"     # perturbed_fy, fast_soft_rank, mse, fixed_permutation.
  config.pretext.n_rows = 10               # Patches along frequency (bands).
  config.pretext.n_cols = 1                # Patches along time.
  config.pretext.num_samples = 10          # perturbed_fy: Monte-Carlo samples (the paper's 10).
  config.pretext.sigma = 2.0               # perturbed_fy: noise scale (the paper's 0.1; 2.0 measured better here).
  config.pretext.regularization_strength = 1.0  # fast_soft_rank: L2 soft-rank strength.
  config.pretext.num_permutations = 100    # fixed_permutation: k Hamming-maximal permutations.

  config.model = config_dict.ConfigDict()
  config.model.size = "small_bands"        # "tiny", "small", "small_bands" or "paper" (`shuffle_learn.models.cfn.SIZES`).
  config.model.normalize_patches = False   # True standardises every patch (no level shortcut; hurts downstream).

  config.train = config_dict.ConfigDict()
  config.train.batch_size = 32             # Global batch, split over all devices and hosts.
  config.train.learning_rate = 1e-4        # Adam, after a linear warm-up; constant afterwards.
  config.train.warmup_steps = 100
  config.train.grad_clip_norm = 0.0        # Global-norm clipping; 0 disables it.
  config.train.num_steps = 3000
  config.train.log_every = 50              # Steps between training-metric rows.
  config.train.eval_every = 500            # Steps between validation partial-ranks accuracies.
  config.train.eval_examples = 512         # Validation notes (fixed, with fixed permutations).
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 3
  config.train.async_checkpoints = True
  config.train.progress = True             # A tqdm progress bar.
  return config

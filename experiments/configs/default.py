"""Default config: the CPU pre-training run, 10 frequency bands of gm_notes notes.

Command:
  python -m shuffle_learn.train --config experiments/configs/default.py --workdir /tmp/cfn

Sized for a 2-core CPU, not the paper's settings (those are in `paper.py`):
TimGM6mb notes (it ships with pretty_midi; add FluidR3_GM with
data.soundfonts="TimGM6mb,FluidR3_GM"), a 64-bin log-mel of the first second
of each note standardised per example, 10 bands of 6 bins, the `small_bands`
CFN, no per-patch normalisation, perturbed Fenchel-Young with sigma 2.0, Adam
at 1e-4, batch 32, 3000 steps.

Expected: about 2.6 minutes on the 2-core CPU; validation partial-ranks
accuracy about 0.35 (chance 0.1). Downstream, in the main job
(`experiments/configs/nsynth.py`): family accuracy 0.745 against 0.691 for the
untrained CFN. How these settings were chosen, with the runs that measured
them: docs/results/README.md ("What moved the numbers").
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
  config.pretext.modality = "audio"        # "audio", "image" or "video" (`shuffle_learn.pretext.INPUTS`).
  config.pretext.loss = "perturbed_fy"     # perturbed_fy, fast_soft_rank, mse, fixed_permutation.
  config.pretext.n_rows = 10               # Patches along frequency (bands).
  config.pretext.n_cols = 1                # Patches along time.
  config.pretext.num_perturbations = 10    # perturbed_fy: Monte-Carlo perturbations (the paper's 10).
  config.pretext.sigma = 2.0               # perturbed_fy: noise scale (the paper's 0.1).
  config.pretext.regularization_strength = 1.0  # fast_soft_rank: L2 soft-rank strength.
  config.pretext.num_permutations = 100    # fixed_permutation: k Hamming-maximal permutations.

  config.model = config_dict.ConfigDict()
  config.model.size = "small_bands"        # tiny, small, small_bands, paper, resnet_small, resnet_tiny (`models.SIZES`).
  config.model.normalize_patches = False   # True standardises every patch (no level shortcut).

  config.train = config_dict.ConfigDict()
  config.train.batch_size = 32             # Global batch, split over all devices and hosts.
  config.train.learning_rate = 1e-4        # Adam, after a linear warm-up (peak rate).
  config.train.warmup_steps = 100
  config.train.schedule = "constant"       # "constant" after warm-up, or "cosine" (to 0 at num_steps).
  config.train.grad_clip_norm = 0.0        # Global-norm clipping; 0 disables it.
  config.train.num_steps = 3000
  config.train.num_epochs = 0.0            # > 0: train this many epochs of the train split instead of num_steps.
  config.train.log_every = 50              # Steps between training-metric rows.
  config.train.eval_every = 500            # Steps between validation partial-ranks accuracies.
  config.train.eval_examples = 512         # Validation notes (fixed, with fixed permutations).
  config.train.checkpoint_every = 500
  config.train.keep_checkpoints = 3
  config.train.async_checkpoints = True
  config.train.progress = True             # A tqdm progress bar.
  return config

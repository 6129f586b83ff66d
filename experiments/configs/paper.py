"""The paper's pre-training settings (Carr et al. 2021, Section 3 and appendix).

Command:
  python -m shuffle_learn.train --config experiments/configs/paper.py --workdir /tmp/cfn_paper

The log-compressed spectrogram of the whole 4 s note (513 frequency bins), 10
frequency bands, the AlexNet-sized CFN, perturbed Fenchel-Young loss (10
perturbations, sigma 0.1), Adam at learning rate 1e-6, batch 32, 1000 epochs of
the train split: the steps are computed from the source's length when the run
starts (`shuffle_learn.train.num_steps`), e.g. about 1.16M steps for the
37,235 train notes of TimGM6mb + FluidR3_GM. Accelerator work, not a CPU job.
Per-patch normalisation is off: the paper does not mention it.
"""

from experiments.configs import default

EPOCHS = 1000


def paper_training(config):
  """The papers' objective, network and optimisation, shared by every modality's paper config."""
  config.pretext.loss = "perturbed_fy"
  config.pretext.num_perturbations = 10
  config.pretext.sigma = 0.1
  config.model.size = "paper"
  config.train.batch_size = 32
  config.train.learning_rate = 1e-6
  config.train.warmup_steps = 0
  config.train.num_epochs = float(EPOCHS)
  config.train.eval_every = 5000
  config.train.checkpoint_every = 5000
  return config


def get_config():
  config = paper_training(default.get_config())
  config.features.kind = "log_spectrogram"
  config.features.seconds = 4.0
  config.features.normalization = "none"
  config.pretext.n_rows = 10
  config.pretext.n_cols = 1
  config.model.normalize_patches = False
  return config

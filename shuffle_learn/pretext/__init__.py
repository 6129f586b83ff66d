"""The permutation pretext task for any input: patches of an input, a permutation, an objective.

    raw batch field ("audio", "image" or "video")
      -> the modality's input (`INPUTS`, config ``pretext.modality``): front end
         and patcher, giving patches (batch, n, h, w, c) in order
      -> `Pretext.shuffle`: a permutation per example, drawn by the objective
      -> the CFN (`shuffle_learn.models`): n scores or k logits
      -> `Pretext.loss` and `Pretext.accuracy` (`OBJECTIVES`, config ``pretext.loss``)

Modalities and objectives are small registries: a new one is a new file
beside its siblings and an entry here.

The contrastive peer objectives (``pretext.loss`` among `sampling.LOSSES`:
COLA's clip-level, the frame-level and the pitch-shift strategies of
Kuroyanagi et al. 2022) are pretexts of the same trainer on audio clips:
`from_config` returns a `sampling.SamplingPretext` for them. Both kinds answer
what `shuffle_learn.train` and `shuffle_learn.evaluators.pretext_accuracy`
ask: ``metric``, ``chance``, ``make_model``, ``init_params``, ``train_loss``,
``train_metrics`` and ``eval_sums``. `LOSSES` lists every ``pretext.loss``.

References:
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022.
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Shuffle to Learn: Self-Supervised Learning from Permutations via
  Differentiable Ranking (ICLR 2021 submission), Section 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from shuffle_learn import _checks
from shuffle_learn.data import permutations as permutations_lib
from shuffle_learn.pretext.audio import AudioInput
from shuffle_learn.pretext.image import ImageInput
from shuffle_learn.pretext import sampling
from shuffle_learn.pretext.objectives import OBJECTIVES
from shuffle_learn.pretext.video import VideoInput

INPUTS = {"audio": AudioInput, "image": ImageInput, "video": VideoInput}
# Every ``pretext.loss``: the permutation objectives, then the contrastive peers (audio only).
LOSSES = (*OBJECTIVES, *sampling.LOSSES)
Input = AudioInput | ImageInput | VideoInput


@dataclasses.dataclass(frozen=True)
class Pretext:
  """An input's patches, shuffled, and the objective that scores their recovery.

  Attributes:
    input: the modality's front end and patcher (`INPUTS`).
    objective: one of `OBJECTIVES`, built for ``input.num_patches``.
  """

  input: Input
  objective: Any

  def __post_init__(self):
    if self.objective.num_patches != self.input.num_patches:
      raise ValueError(f"objective is built for {self.objective.num_patches} patches, the input gives "
                       f"{self.input.num_patches}.")

  @property
  def num_patches(self) -> int:
    return self.input.num_patches

  @property
  def num_outputs(self) -> int:
    """Width of the network's head: n scores, or k logits for ``fixed_permutation``."""
    return self.objective.num_outputs

  def patches(self, raw: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Raw inputs -> patches ``(batch, n, h, w, c)`` in order; ``key`` drives augmentation (None: none)."""
    return self.input(raw, key)

  def shuffle(self, key: jax.Array, patches: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shuffles every example's patches with its own permutation.

    Returns:
      ``(shuffled, labels)``: labels int32, ``(batch, n)`` permutations for the
      ranking objectives, ``(batch,)`` indices into the set for
      ``fixed_permutation``.
    """
    perms, labels = self.objective.sample(key, patches.shape[0])
    return permutations_lib.shuffle_patches(patches, perms), labels

  def loss(self, key: jax.Array, outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example loss, float32 ``(batch,)``; ``key`` drives ``perturbed_fy``'s noise."""
    return self.objective.loss(key, outputs.astype(jnp.float32), labels)

  def accuracy(self, outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example partial-ranks accuracy, float32 ``(batch,)``; chance is 1/n."""
    return self.objective.accuracy(outputs, labels)

  # What the trainer (`shuffle_learn.train`) and the validation
  # (`shuffle_learn.evaluators.pretext_accuracy`) ask of a pretext; the peer
  # objectives' `sampling.SamplingPretext` answers the same.
  metric: ClassVar[str] = "partial_ranks_accuracy"

  def chance(self, batch_size: int) -> float:
    """The metric's chance level: 1/n."""
    del batch_size
    return 1.0 / self.num_patches

  def make_model(self, config):
    """The CFN of ``config.model`` with this task's head width."""
    from shuffle_learn import models  # pylint: disable=g-import-not-at-top
    return models.from_config(config, self.num_outputs)

  def init_params(self, model, key: jax.Array):
    return model.init(key, self.patches(self.input.dummy()), train=False)

  def train_loss(self, model, raw: jax.Array, key: jax.Array):
    """``params -> (mean loss, (outputs, labels))`` of one step: patches, a permutation per example from ``key``."""
    perm_key, loss_key, dropout_key = jax.random.split(key, 3)
    patches = self.patches(raw, jax.random.fold_in(key, 3))
    shuffled, labels = self.shuffle(perm_key, patches)

    def loss_fn(params):
      outputs = model.apply(params, shuffled, train=True, rngs={"dropout": dropout_key})
      return jnp.mean(self.loss(loss_key, outputs, labels)), (outputs, labels)

    return loss_fn

  def train_metrics(self, aux) -> dict[str, jax.Array]:
    """The step's batch-mean partial-ranks accuracy, from `train_loss`'s auxiliary output."""
    outputs, labels = aux
    return {"partial_ranks_accuracy": jnp.mean(self.accuracy(outputs, labels))}

  def eval_sums(self, model, params, raw: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """The batch's summed loss and partial-ranks accuracy, the permutations drawn from ``key``."""
    perm_key, loss_key = jax.random.split(key)
    shuffled, labels = self.shuffle(perm_key, self.patches(raw))
    outputs = model.apply(params, shuffled, train=False)
    return {"loss": jnp.sum(self.loss(loss_key, outputs, labels)),
            "partial_ranks_accuracy": jnp.sum(self.accuracy(outputs, labels))}


def input_from_config(config, path: str = "config") -> Input:
  """The input of a pre-training config (``pretext.modality`` and its fields); errors name the field."""
  modality = _checks.get(config, "pretext.modality", path)
  with _checks.prefixed(path):
    _checks.check_choice("pretext.modality", modality, tuple(INPUTS))
  cls = INPUTS[modality]
  kwargs = {name: _checks.get(config, field, path) for name, field in cls.config_fields.items()}
  with _checks.prefixed(path, cls.config_fields):
    return cls(**kwargs)


def from_config(config, path: str = "config") -> Pretext | sampling.SamplingPretext:
  """The pretext task of a pre-training config; a bad field raises ValueError naming it (``config.pretext.sigma ...``).

  ``pretext.loss`` among `OBJECTIVES` gives the permutation task, among
  `sampling.LOSSES` a contrastive peer objective.
  """
  loss = _checks.get(config, "pretext.loss", path)
  with _checks.prefixed(path):
    _checks.check_choice("pretext.loss", loss, LOSSES)
  if loss in sampling.LOSSES:
    modality = _checks.get(config, "pretext.modality", path)
    if modality != "audio":
      raise ValueError(f"{path}.pretext.modality must be 'audio' for pretext.loss={loss!r}, got {modality!r}.")
    return sampling.from_config(config, path)
  input_ = input_from_config(config, path)
  cls = OBJECTIVES[loss]
  kwargs = {name: _checks.get(config, f"pretext.{name}", path) for name in cls.fields}
  if loss == "fixed_permutation":
    kwargs["seed"] = _checks.get(config, "seed", path)
  with _checks.prefixed(f"{path}.pretext"):
    objective = cls(num_patches=input_.num_patches, **kwargs)
  return Pretext(input_, objective)

"""The permutation pretext task for any input: patches of an input, a permutation, an objective.

    raw batch field ("audio", "image" or "video")
      -> the modality's input (`INPUTS`, config ``pretext.modality``): front end
         and patcher, giving patches (batch, n, h, w, c) in order
      -> `Pretext.shuffle`: a permutation per example, drawn by the objective
      -> the CFN (`shuffle_learn.models`): n scores or k logits
      -> `Pretext.loss` and `Pretext.accuracy` (`OBJECTIVES`, config ``pretext.loss``)

Modalities and objectives are small registries: a new one is a new file
beside its siblings and an entry here.

References:
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Shuffle to Learn: Self-Supervised Learning from Permutations via
  Differentiable Ranking (ICLR 2021 submission), Section 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from shuffle_learn import _checks
from shuffle_learn.data import permutations as permutations_lib
from shuffle_learn.pretext.audio import AudioInput
from shuffle_learn.pretext.image import ImageInput
from shuffle_learn.pretext.objectives import OBJECTIVES
from shuffle_learn.pretext.video import VideoInput

INPUTS = {"audio": AudioInput, "image": ImageInput, "video": VideoInput}
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


def input_from_config(config, path: str = "config") -> Input:
  """The input of a pre-training config (``pretext.modality`` and its fields); errors name the field."""
  modality = _checks.get(config, "pretext.modality", path)
  with _checks.prefixed(path):
    _checks.check_choice("pretext.modality", modality, tuple(INPUTS))
  cls = INPUTS[modality]
  kwargs = {name: _checks.get(config, field, path) for name, field in cls.config_fields.items()}
  with _checks.prefixed(path, cls.config_fields):
    return cls(**kwargs)


def from_config(config, path: str = "config") -> Pretext:
  """The pretext task of a pre-training config; a bad field raises ValueError naming it (``config.pretext.sigma ...``)."""
  input_ = input_from_config(config, path)
  loss = _checks.get(config, "pretext.loss", path)
  with _checks.prefixed(path):
    _checks.check_choice("pretext.loss", loss, tuple(OBJECTIVES))
  cls = OBJECTIVES[loss]
  kwargs = {name: _checks.get(config, f"pretext.{name}", path) for name in cls.fields}
  if loss == "fixed_permutation":
    kwargs["seed"] = _checks.get(config, "seed", path)
  with _checks.prefixed(f"{path}.pretext"):
    objective = cls(num_patches=input_.num_patches, **kwargs)
  return Pretext(input_, objective)

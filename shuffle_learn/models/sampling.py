"""The network of the contrastive peer objectives: an encoder of whole clips, frame embeddings and their heads.

Kuroyanagi et al. 2022 (with COLA, Saeed et al. 2021) encode a log-mel segment
into frame embeddings ``h`` and compare them with learnt similarities:

    spectrogram (batch, frames, mel)            height is time, width frequency
      -> encoder: its last feature map           (batch, T', F', C)
         EfficientNet (`efficientnet`, the paper's B0) or the CFN's AlexNet
         backbone (`alexnet`) applied to the whole clip as one patch
      -> mean over frequency                     (batch, T', C)
      -> Dense(features), LayerNorm, tanh: h     (batch, T', features)   `SamplingNet.frames`
    heads on h (`shuffle_learn.pretext.sampling` computes the losses):
      clip   mean of h over T', bilinear ``w_clip``   (Eq. 1; COLA)
      frame  every frame of h, bilinear ``w_frame``   (Eq. 3)
      pitch  Dense(1) per frame                       (Eq. 6; `SamplingNet.pitch`)

The paper's ``g_clip`` and ``g_frame`` ("shallow networks") are here the one
Dense-LayerNorm-tanh layer that gives ``h`` (the 512-unit layer the paper
describes, whose output it calls ``h``): the clip representation is its time
mean, the frame representation ``h`` itself. Downstream, the frozen ``h`` is
the embedding: averaged over frames for clip tasks, per frame for sound event
detection.

The encoder is fully convolutional, so clips of any length at least the
encoder's stride product are accepted; ``T'`` grows with the clip.

References:
  Kuroyanagi, Hayashi, Takeda, Toda. Self-Supervised Learning Method Using
  Multiple Sampling Strategies for General-Purpose Audio Representation.
  ICASSP 2022, Sections 2 and 3.2.
  Saeed, Grangier, Zeghidour. Contrastive Learning of General-Purpose Audio
  Representations. ICASSP 2021.
"""

from __future__ import annotations

from typing import Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from shuffle_learn import _checks
from shuffle_learn.models import alexnet
from shuffle_learn.models import efficientnet

Encoder = Union[alexnet.AlexNetSize, efficientnet.EfficientNetConfig]


def check_encoder(encoder) -> None:
  """Raises ValueError unless ``encoder`` is an `alexnet.AlexNetSize` or an `efficientnet.EfficientNetConfig`."""
  if not isinstance(encoder, (alexnet.AlexNetSize, efficientnet.EfficientNetConfig)):
    raise ValueError(f"encoder must be an AlexNetSize or an EfficientNetConfig, got {type(encoder).__name__}.")


def min_input_shape(encoder: Encoder) -> tuple[int, int]:
  """The smallest ``(frames, mel)`` spectrogram the encoder accepts."""
  if isinstance(encoder, efficientnet.EfficientNetConfig):
    return encoder.min_input_shape()
  return encoder.min_patch_shape()


class SamplingNet(nn.Module):
  """An encoder of log-mel spectrograms into frame embeddings ``h``, with the peer objectives' parameters.

  Attributes:
    encoder: an `efficientnet.EfficientNetConfig` (B0 in the paper) or an
      `alexnet.AlexNetSize` (the CFN's backbone, on the whole clip).
    features: width of ``h`` (the paper's 512).
  """

  encoder: Encoder
  features: int = 512

  def __post_init__(self):
    check_encoder(self.encoder)
    _checks.check_int("features", self.features, 1)
    super().__post_init__()

  def setup(self):
    if isinstance(self.encoder, efficientnet.EfficientNetConfig):
      self.backbone = efficientnet.EfficientNet(self.encoder)
    else:
      self.backbone = alexnet.AlexNet(self.encoder)
    self.dense = nn.Dense(self.features)
    self.norm = nn.LayerNorm()
    init = nn.initializers.normal(stddev=self.features ** -0.5)
    self.w_clip = self.param("w_clip", init, (self.features, self.features))
    self.w_frame = self.param("w_frame", init, (self.features, self.features))
    self.pitch_head = nn.Dense(1)

  def _feature_map(self, x: jax.Array, train: bool) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4:
      raise ValueError(f"x must be (batch, frames, mel) or (batch, frames, mel, 1), got shape {x.shape}.")
    if isinstance(self.encoder, efficientnet.EfficientNetConfig):
      return self.backbone.feature_map(x, train)
    return self.backbone(x, train, feature_map=True)

  def frames(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Frame embeddings ``h``: ``(batch, frames, mel)`` -> ``(batch, T', features)``, in [-1, 1].

    ``train`` applies the encoder's stochastic depth (EfficientNet; needs a
    ``'dropout'`` rng).
    """
    h = self._feature_map(x, train).mean(axis=-2)  # Mean over frequency: (batch, T', C).
    return jnp.tanh(self.norm(self.dense(h)))

  def pitch(self, h: jax.Array) -> jax.Array:
    """The pitch head ``g_pitch``: ``(batch, T', features)`` -> ``(batch, T')``."""
    return self.pitch_head(h)[..., 0]

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """`frames`, with every parameter created (for ``init``): ``(batch, T', features)``."""
    h = self.frames(x, train=train)
    self.pitch(h)  # The bilinear matrices are created by setup; the objectives read them from the params.
    return h

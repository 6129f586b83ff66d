"""Context Free Network (CFN): a shared AlexNet per patch, then fully connected layers.

The CFN of Noroozi & Favaro 2016 applies one convolutional backbone, with the
SAME weights, to every patch of a shuffled input, concatenates the per-patch
features in slot order and maps them through fully connected layers. Carr et
al. 2021 use it on spectrogram patches (frequency bands, time frames or tiles):

    x (batch, n, H, W[, C])
      -> [optional] per-patch normalisation (zero mean, unit std per patch)
      -> AlexNet on every patch, shared weights (nn.vmap over the patch axis)
         conv / ReLU / max-pool stack, then fc6 Dense + ReLU    (batch, n, f)
      -> concatenate in slot order                              (batch, n * f)
      -> fc7 Dense(embedding) + ReLU: THE EMBEDDING             (batch, e)
      -> head Dense(num_outputs)                                (batch, num_outputs)

``num_outputs`` is ``n`` for the ranking objectives (one score per slot, whose
ascending ranks should be ``perm + 1``, see `shuffle_learn.data.permutations`)
or ``k`` for the fixed-permutation classification baseline (one logit per
permutation of the set). `CFN.embed` returns the fc7 activation and
`CFN.conv_embed` the pooled last-convolution features of every patch, the
embedding we probe downstream (see its docstring); feed them unshuffled
patches (the identity permutation).

Slot-specific scores: the patch features are concatenated in slot order, so the
head sees which slot each feature came from and can output slot-specific
scores. This is what the ranking objective needs (score ``j`` is the rank of
the patch in slot ``j``), and it is why the network is only "context free" up
to fc6: the backbone cannot see other patches or its own slot, the head can.

Normalisation: there is no BatchNorm. BatchNorm would need mutable
``batch_stats``, a train step that threads them and differs between train and
eval, and it mixes examples of a batch. Instead `CFNSize.layer_norm` optionally
puts a LayerNorm over channels after every convolution (per example, per patch,
per position: no state, the same in train and eval, deterministic), on for
`PAPER` (five convolutions deep) and off for `SMALL`. ``normalize_patches``
standardises every patch of every example separately (its mean over height,
width and channels subtracted, divided by its std), as Noroozi & Favaro
normalise each tile, so that level or gain differences between patches cannot
be used as a shortcut to their order.

Sizes (`CFNSize`):

- `PAPER`: AlexNet (Krizhevsky et al. 2012) convolutions 96-256-384-384-256,
  kernels 11/5/3/3/3, strides 4/1/1/1/1 with 'SAME' padding, 3x3 max-pools of
  stride 2 after conv1, conv2 and conv5, fc6 1024 per patch and fc7 4096 (as in
  the CFN), dropout 0.5 after fc6 and fc7. A pool whose window is larger than
  the current feature map is shrunk to it, so an axis never shrinks below 1
  and thin bands (a 51 x 398 band, or 6 x 398) still work; the only limit is
  that each axis of a patch has at least the product of the conv strides in
  pixels (`CFNSize.min_patch_shape`: 4 x 4 for `PAPER` and `SMALL`).
- `TINY`: two convolutions 8-16, fc6 32, fc7 64, for tests and the tiny
  config.
- `SMALL`: CPU-sized: convolutions 16-32-64, kernel 3, strides 4/1/1, 2x2
  max-pools after each, fc6 128 per patch, fc7 256, no dropout. On a batch of
  32 examples of 10 bands, on 2 CPU cores (jax 0.10, jitted, after
  compilation), forward + backward takes about 0.29 s for 51 x 398 bands and
  0.04 s for 6 x 398 bands; a whole training step with Adam about 0.32 s
  (about 3 steps/s) and 0.05 s (about 20 steps/s). The forward pass alone
  takes 0.04 s and 0.007 s. Strides 2/2/1 would cost 0.9 s a step for
  51 x 398.

References:
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016, Section 3.1 (the Context Free Network).
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep
  Convolutional Neural Networks. NeurIPS 2012.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

# Added to the variance of a patch before the square root in the normalisation.
NORMALIZE_EPS = 1e-6


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class CFNSize:
  """Layer sizes of the CFN.

  Attributes:
    conv_features: output channels of each convolution.
    kernel_sizes: square kernel size of each convolution.
    strides: stride of each convolution ('SAME' padding): an integer (the same
      along height and width) or a ``(height, width)`` pair.
    pool_after: whether a max-pool follows each convolution.
    pool_window: max-pool window; shrunk per axis to the feature map's size.
    pool_stride: max-pool stride; shrunk per axis to the feature map's size.
    patch_features: width of fc6, the per-patch feature (shared weights).
    embedding: width of fc7, the aggregate embedding used downstream.
    dropout_rate: dropout after fc6 and fc7 when training; 0 disables it.
    layer_norm: a LayerNorm over channels after every convolution.
  """

  conv_features: tuple[int, ...]
  kernel_sizes: tuple[int, ...]
  strides: tuple[int, ...]
  pool_after: tuple[bool, ...]
  pool_window: int = 3
  pool_stride: int = 2
  patch_features: int = 1024
  embedding: int = 4096
  dropout_rate: float = 0.0
  layer_norm: bool = False

  def __post_init__(self):
    num_layers = len(self.conv_features)
    if num_layers < 1:
      raise ValueError(f"conv_features must have at least one layer, got {self.conv_features!r}.")
    for name in ("conv_features", "kernel_sizes"):
      value = getattr(self, name)
      if len(value) != num_layers or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(f"{name} must be {num_layers} integers >= 1 (one per convolution), got {value!r}.")
    if len(self.strides) != num_layers or not all(
        (_is_int(v) and v >= 1) or (isinstance(v, tuple) and len(v) == 2 and all(_is_int(u) and u >= 1 for u in v))
        for v in self.strides):
      raise ValueError(f"strides must be {num_layers} integers >= 1 or (height, width) pairs of them "
                       f"(one per convolution), got {self.strides!r}.")
    if len(self.pool_after) != num_layers or not all(isinstance(v, bool) for v in self.pool_after):
      raise ValueError(f"pool_after must be {num_layers} bools (one per convolution), got {self.pool_after!r}.")
    for name in ("pool_window", "pool_stride", "patch_features", "embedding"):
      value = getattr(self, name)
      if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}.")

  def stride_pairs(self) -> tuple[tuple[int, int], ...]:
    """The strides as ``(height, width)`` pairs."""
    return tuple(s if isinstance(s, tuple) else (s, s) for s in self.strides)

  def feature_map_shape(self, height: int, width: int) -> Optional[tuple[int, int]]:
    """Spatial shape after the convolution stack, or None if the patch is too small."""
    shape = [height, width]
    if any(s < m for s, m in zip(shape, self.min_patch_shape())):
      return None
    for stride, pool in zip(self.stride_pairs(), self.pool_after):
      shape = [-(-s // st) for s, st in zip(shape, stride)]  # 'SAME': ceil(s / stride).
      if pool:
        shape = [(s - min(self.pool_window, s)) // min(self.pool_stride, s) + 1 for s in shape]
    return shape[0], shape[1]

  def min_patch_shape(self) -> tuple[int, int]:
    """Smallest ``(height, width)`` accepted: the product of the conv strides per axis.

    A smaller patch would leave strided convolutions with fewer pixels than
    their stride, so that they no longer downsample but only pad.
    """
    height = width = 1
    for stride_h, stride_w in self.stride_pairs():
      height, width = height * stride_h, width * stride_w
    return height, width


PAPER = CFNSize(
    conv_features=(96, 256, 384, 384, 256),
    kernel_sizes=(11, 5, 3, 3, 3),
    strides=(4, 1, 1, 1, 1),
    pool_after=(True, True, False, False, True),
    pool_window=3,
    pool_stride=2,
    patch_features=1024,
    embedding=4096,
    dropout_rate=0.5,
    layer_norm=True,
)

SMALL = CFNSize(
    conv_features=(16, 32, 64),
    kernel_sizes=(3, 3, 3),
    strides=(4, 1, 1),
    pool_after=(True, True, True),
    pool_window=2,
    pool_stride=2,
    patch_features=128,
    embedding=256,
    dropout_rate=0.0,
    layer_norm=False,
)

# SMALL for thin frequency bands (a few mel bins tall): the first convolution
# strides along time only, so that the frequency detail inside a band (the
# spacing of harmonics, which tells both the band's position and the pitch)
# reaches the second convolution instead of being subsampled 4x.
SMALL_BANDS = dataclasses.replace(SMALL, strides=((1, 4), 1, 1))

# For tests and the tiny config: two convolutions, compiles and runs in moments.
TINY = CFNSize(
    conv_features=(8, 16),
    kernel_sizes=(3, 3),
    strides=(2, 2),
    pool_after=(True, True),
    pool_window=2,
    pool_stride=2,
    patch_features=32,
    embedding=64,
    dropout_rate=0.0,
    layer_norm=False,
)

# The presets by the name used in configs (``model.size``).
SIZES = {"tiny": TINY, "small": SMALL, "small_bands": SMALL_BANDS, "paper": PAPER}


class AlexNet(nn.Module):
  """AlexNet-style backbone for ONE patch: conv stack, flatten, fc6.

  Attributes:
    size: the layer sizes.
  """

  size: CFNSize

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Maps patches to features.

    Args:
      x: ``(batch, height, width, channels)`` patches.
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(fc6, conv)``: ``(batch, size.patch_features)`` after fc6, ReLU and
      dropout; and ``(batch, 2 * size.conv_features[-1])``, the last
      convolution's activation (after its ReLU, before its pool) averaged and
      maxed over the patch's positions.
    """
    size = self.size
    if size.feature_map_shape(x.shape[-3], x.shape[-2]) is None:
      raise ValueError(
          f"x: patches of shape {x.shape[-3:-1]} are too small for size.strides {size.strides}; "
          f"(height, width) needs at least {size.min_patch_shape()} pixels (the product of the strides).")
    for features, kernel, stride, pool in zip(size.conv_features, size.kernel_sizes, size.stride_pairs(),
                                              size.pool_after):
      x = nn.Conv(features, (kernel, kernel), strides=stride, padding="SAME",
                  kernel_init=nn.initializers.he_normal())(x)
      if size.layer_norm:
        x = nn.LayerNorm()(x)
      x = nn.relu(x)
      conv = x  # After the loop: the last convolution's map, before its pool.
      if pool:
        window = tuple(min(size.pool_window, s) for s in x.shape[-3:-1])
        strides = tuple(min(size.pool_stride, s) for s in x.shape[-3:-1])
        x = nn.max_pool(x, window, strides=strides, padding="VALID")
    conv = jnp.concatenate([conv.mean(axis=(-3, -2)), conv.max(axis=(-3, -2))], axis=-1)
    x = x.reshape(x.shape[:-3] + (-1,))  # (batch, h * w * c)
    x = nn.relu(nn.Dense(size.patch_features, kernel_init=nn.initializers.he_normal(), name="fc6")(x))
    return nn.Dropout(size.dropout_rate, deterministic=not train)(x), conv


def normalize_patches(x: jax.Array) -> jax.Array:
  """Standardises every patch of every example separately.

  Args:
    x: ``(batch, num_patches, height, width, channels)``.

  Returns:
    ``x`` minus each patch's mean over ``(height, width, channels)``, divided
    by ``sqrt(var + NORMALIZE_EPS)``; a constant patch becomes zeros.
  """
  mean = x.mean(axis=(-3, -2, -1), keepdims=True)
  var = x.var(axis=(-3, -2, -1), keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + NORMALIZE_EPS)


class CFN(nn.Module):
  """Context Free Network (Noroozi & Favaro 2016) over the patches of an input.

  Attributes:
    size: layer sizes, `PAPER` or `SMALL` or a custom `CFNSize`.
    num_outputs: head width: ``n`` scores (one per slot) for the ranking
      objectives, ``k`` logits for the fixed-permutation classification.
    normalize_patches: standardise each patch of each example (see
      `normalize_patches`) before the backbone.

  Example:
    >>> model = CFN(SMALL, num_outputs=10)
    >>> x = jnp.zeros((32, 10, 6, 398))                  # 10 frequency bands
    >>> params = model.init(jax.random.key(0), x, train=False)
    >>> model.apply(params, x, train=False).shape       # one score per slot
    (32, 10)
    >>> model.apply(params, x, method=CFN.embed).shape   # fc7
    (32, 256)
    >>> model.apply(params, x, method=CFN.conv_embed).shape  # pooled conv3
    (32, 1280)
  """

  size: CFNSize = SMALL
  num_outputs: int = 1
  normalize_patches: bool = True

  def __post_init__(self):
    if not isinstance(self.size, CFNSize):
      raise ValueError(f"size must be a CFNSize, got {type(self.size).__name__}.")
    if not _is_int(self.num_outputs) or self.num_outputs < 1:
      raise ValueError(f"num_outputs must be an integer >= 1, got {self.num_outputs!r}.")
    super().__post_init__()

  def setup(self):
    # One AlexNet, its parameters broadcast over the patch axis (shared weights),
    # an independent dropout mask per patch.
    self.backbone = nn.vmap(
        AlexNet,
        in_axes=(1, None),
        out_axes=1,
        variable_axes={"params": None},
        split_rngs={"params": False, "dropout": True},
    )(self.size)
    self.fc7 = nn.Dense(self.size.embedding, kernel_init=nn.initializers.he_normal())
    self.dropout = nn.Dropout(self.size.dropout_rate)
    self.head = nn.Dense(self.num_outputs)

  def _prepare(self, x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim == 4:
      x = x[..., None]  # (batch, n, height, width, 1)
    if x.ndim != 5:
      raise ValueError(
          f"x must be (batch, num_patches, height, width) or (batch, num_patches, height, width, channels), "
          f"got shape {x.shape}.")
    if x.shape[1] < 1:
      raise ValueError(f"x must have at least one patch, got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.float32)
    return normalize_patches(x) if self.normalize_patches else x

  def patch_features(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Per-patch fc6 features from the shared backbone.

    Args:
      x: ``(batch, n, height, width)`` or ``(batch, n, height, width, channels)``.
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(batch, n, size.patch_features)``; feature ``[:, j]`` depends on patch
      ``j`` only.
    """
    return self.backbone(self._prepare(x), train)[0]

  def conv_embed(self, x: jax.Array) -> jax.Array:
    """The convolutional embedding: every patch's last-convolution map, averaged and maxed over positions.

    The downstream embedding for ranking pretext tasks. fc7 (`embed`) is
    trained to tell which slot holds which patch; on unshuffled input it
    tends to the same answer (the identity) for every note, and the head
    loses what distinguishes notes. The convolutional features are what the
    backbone learnt to recognise in a patch (harmonic spacing, onsets,
    spectral texture) and stay note-specific.

    Args:
      x: ``(batch, n, height, width)`` or ``(batch, n, height, width, channels)``,
        unshuffled.

    Returns:
      ``(batch, n * 2 * size.conv_features[-1])``: per patch in slot order,
      the mean then the max of each channel.
    """
    conv = self.backbone(self._prepare(x), False)[1]  # (batch, n, 2 * c)
    return conv.reshape(conv.shape[0], -1)

  def fc6_embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Every patch's fc6 features (after ReLU), concatenated in slot order: ``(batch, n * size.patch_features)``.

    Context free like `conv_embed` (feature block ``j`` depends on patch ``j``
    only), but after the backbone's dense layer, which sees the whole
    flattened feature map and so keeps where in the patch things happen.
    """
    features = self.patch_features(x, train=train)
    return features.reshape(features.shape[0], -1)

  def embed(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """The fc7 embedding of the patches in the order given.

    Args:
      x: ``(batch, n, height, width)`` or ``(batch, n, height, width, channels)``;
        for downstream use, unshuffled (the identity permutation).
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(batch, size.embedding)``: fc7 after ReLU (before its dropout).
    """
    return nn.relu(self.fc7(self.fc6_embed(x, train=train)))  # fc7 on (batch, n * f), slot order

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Head output.

    Args:
      x: ``(batch, n, height, width)`` or ``(batch, n, height, width, channels)``,
        shuffled patches.
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(batch, num_outputs)``: one score per slot or one logit per permutation.
    """
    embedding = self.embed(x, train=train)
    return self.head(self.dropout(embedding, deterministic=not train))

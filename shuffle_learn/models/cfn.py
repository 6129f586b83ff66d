"""Context Free Network (CFN): a shared backbone per patch, then fully connected layers.

The CFN of Noroozi & Favaro 2016 applies one convolutional backbone, with the
SAME weights, to every patch of a shuffled input, concatenates the per-patch
features in slot order and maps them through fully connected layers. Carr et
al. 2021 use it on spectrogram patches (frequency bands, time frames or tiles):

    x (batch, n, H, W, C)         a 4-D (batch, n, H, W) is one channel
      -> [optional] per-patch normalisation (zero mean, unit std per patch)
      -> backbone on every patch, shared weights (nn.vmap over the patch axis):
         AlexNet (`alexnet`) or ResNet (`resnet`), up to fc6 + ReLU  (batch, n, f)
      -> concatenate in slot order                                 (batch, n * f)
      -> fc7 Dense(embedding) + ReLU: THE EMBEDDING                (batch, e)
      -> head Dense(num_outputs)                                   (batch, num_outputs)

The backbone is chosen by the type of ``size`` (`BACKBONES`): an
`alexnet.AlexNetSize` gives the AlexNet of Krizhevsky et al. 2012 that the
CFN paper uses, a `resnet.ResNetSize` a residual network (He et al. 2016).
The named presets are `shuffle_learn.models.SIZES`.

``num_outputs`` is ``n`` for the ranking objectives (one score per slot, whose
ascending ranks should be ``perm + 1``, see `shuffle_learn.data.permutations`)
or ``k`` for the fixed-permutation classification baseline (one logit per
permutation of the set). `CFN.embed` returns the fc7 activation and
`CFN.conv_embed` the pooled last-convolution features of every patch, the
embedding we probe downstream (see its docstring), and `CFN.frame_embed` the
last feature map of every patch averaged over frequency and arranged by time,
the per-frame embedding of frame-level probes (sound event detection); feed
them unshuffled patches (the identity permutation).

Slot-specific scores: the patch features are concatenated in slot order, so the
head sees which slot each feature came from and can output slot-specific
scores. This is what the ranking objective needs (score ``j`` is the rank of
the patch in slot ``j``), and it is why the network is only "context free" up
to fc6: the backbone cannot see other patches or its own slot, the head can.

Normalisation: no BatchNorm anywhere (the backbones use optional LayerNorms,
see `alexnet`), so the model is stateless and the same in train and eval.
``normalize_patches`` standardises every patch of every example separately
(its mean over height, width and channels subtracted, divided by its std), as
Noroozi & Favaro normalise each tile, so that level or gain differences
between patches cannot be used as a shortcut to their order.

References:
  Noroozi, Favaro. Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles. ECCV 2016, Section 3.1 (the Context Free Network).
  Carr, Berthet, Blondel, Teboul, Zeghidour. Self-Supervised Learning of Audio
  Representations from Permutations with Differentiable Ranking. IEEE SPL 2021.
  Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep
  Convolutional Neural Networks. NeurIPS 2012.
  He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016.
"""

from __future__ import annotations

from typing import Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from shuffle_learn import _checks
from shuffle_learn.models import _backbone
from shuffle_learn.models import alexnet
from shuffle_learn.models import resnet

# Added to the variance of a patch before the square root in the normalisation.
NORMALIZE_EPS = 1e-6

# The per-patch network for each type of size.
BACKBONES = {alexnet.AlexNetSize: alexnet.AlexNet, resnet.ResNetSize: resnet.ResNet}

BackboneSize = Union[alexnet.AlexNetSize, resnet.ResNetSize]


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
    size: layer sizes: an `alexnet.AlexNetSize` or a `resnet.ResNetSize`
      (presets by name in `shuffle_learn.models.SIZES`); its type picks the
      backbone (`BACKBONES`).
    num_outputs: head width: ``n`` scores (one per slot) for the ranking
      objectives, ``k`` logits for the fixed-permutation classification.
    normalize_patches: standardise each patch of each example (see
      `normalize_patches`) before the backbone.

  Example:
    >>> model = CFN(alexnet.SMALL, num_outputs=10, normalize_patches=False)
    >>> x = jnp.zeros((32, 10, 6, 398))                  # 10 frequency bands
    >>> params = model.init(jax.random.key(0), x, train=False)
    >>> model.apply(params, x, train=False).shape       # one score per slot
    (32, 10)
    >>> model.apply(params, x, method=CFN.embed).shape   # fc7
    (32, 256)
    >>> model.apply(params, x, method=CFN.conv_embed).shape  # pooled conv3
    (32, 1280)
    >>> model.apply(params, x, method=CFN.frame_embed).shape  # conv3 frames
    (32, 25, 640)
  """

  size: BackboneSize
  num_outputs: int
  normalize_patches: bool

  def __post_init__(self):
    if type(self.size) not in BACKBONES:
      raise ValueError(f"size must be one of {tuple(t.__name__ for t in BACKBONES)}, "
                       f"got {type(self.size).__name__}.")
    _checks.check_int("num_outputs", self.num_outputs, 1)
    _checks.check_bool("normalize_patches", self.normalize_patches)
    super().__post_init__()

  def setup(self):
    # One backbone, its parameters broadcast over the patch axis (shared
    # weights), an independent dropout mask per patch. Its arguments are the
    # patches and the backbone's ``train`` and ``feature_map`` flags, the
    # flags broadcast (flax's vmap takes positional arguments only).
    self.backbone = nn.vmap(
        BACKBONES[type(self.size)],
        in_axes=(1, None, None),  # (patches, train, feature_map)
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
      x: ``(batch, n, height, width, channels)`` or ``(batch, n, height, width)``.
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(batch, n, size.patch_features)``; feature ``[:, j]`` depends on patch
      ``j`` only.
    """
    return self.backbone(self._prepare(x), train, False)[0]

  def conv_embed(self, x: jax.Array) -> jax.Array:
    """The convolutional embedding: every patch's last-convolution map, averaged and maxed over positions.

    The downstream embedding for ranking pretext tasks. fc7 (`embed`) is
    trained to tell which slot holds which patch; on unshuffled input it
    tends to the same answer (the identity) for every note, and the head
    loses what distinguishes notes. The convolutional features are what the
    backbone learnt to recognise in a patch (harmonic spacing, onsets,
    spectral texture) and stay note-specific.

    Args:
      x: ``(batch, n, height, width, channels)`` or ``(batch, n, height, width)``,
        unshuffled.

    Returns:
      ``(batch, n * 2 * size.conv_channels)``: per patch in slot order, the
      mean then the max of each channel.
    """
    # The last feature map, pooled as the backbone pools it: fc6 is not needed,
    # so patches of any size (a longer clip) are embedded.
    conv = _backbone.pool_map(self.backbone(self._prepare(x), False, True))  # (batch, n, 2 * c)
    return conv.reshape(conv.shape[0], -1)

  def frame_embed(self, x: jax.Array, n_cols: int = 1) -> jax.Array:
    """Per-frame embeddings for frame-level probes (sound event detection), context free.

    Every patch goes through the shared backbone up to its last feature map
    (`alexnet.AlexNet` or `resnet.ResNet` with ``feature_map=True``: the last
    convolution's map after its ReLU and before its pool, or the last block's
    output), ``(h', w', c)`` per patch, which is averaged over its height
    (frequency within the patch) into ``w'`` frames of ``c`` features. The
    patches are a row-major grid of ``n = n_rows * n_cols`` patches
    (`shuffle_learn.data.patches.to_patches`: rows are frequency bands,
    lowest first; columns are time segments, earliest first); the frames of
    the columns are concatenated along time and the channels of the rows
    along features:

        out[b, col * w' + t, row * c + k] = mean_i map[b, row * n_cols + col, i, t, k]

    Frame block ``col`` depends on the patches of column ``col`` only, and its
    feature block ``row`` on patch ``(row, col)`` only.

    Args:
      x: ``(batch, n, height, width, channels)`` or ``(batch, n, height,
        width)``, unshuffled (the identity permutation).
      n_cols: patches along time; ``n`` must be a multiple of it. 1 (the
        default) for frequency bands that each span the clip.

    Returns:
      ``(batch, n_cols * w', n_rows * c)`` float, with ``(h', w') =
      size.conv_map_shape(height, width)`` and ``c = size.conv_channels``;
      ``(batch, w', n * c)`` for ``n_cols=1``.
    """
    _checks.check_int("n_cols", n_cols, 1)
    maps = self.backbone(self._prepare(x), False, True)  # (batch, n, h', w', c)
    batch, n, _, width, channels = maps.shape
    if n % n_cols:
      raise ValueError(f"the number of patches must be a multiple of n_cols={n_cols}, got {n} patches.")
    frames = maps.mean(axis=2).reshape(batch, n // n_cols, n_cols, width, channels)  # (batch, row, col, w', c)
    frames = jnp.transpose(frames, (0, 2, 3, 1, 4))  # (batch, col, w', row, c)
    return frames.reshape(batch, n_cols * width, (n // n_cols) * channels)

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
      x: ``(batch, n, height, width, channels)`` or ``(batch, n, height, width)``;
        for downstream use, unshuffled (the identity permutation).
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(batch, size.embedding)``: fc7 after ReLU (before its dropout).
    """
    return nn.relu(self.fc7(self.fc6_embed(x, train=train)))  # fc7 on (batch, n * f), slot order

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Head output.

    Args:
      x: ``(batch, n, height, width, channels)`` or ``(batch, n, height, width)``,
        shuffled patches.
      train: apply dropout (needs a ``'dropout'`` rng).

    Returns:
      ``(batch, num_outputs)``: one score per slot or one logit per permutation.
    """
    embedding = self.embed(x, train=train)
    return self.head(self.dropout(embedding, deterministic=not train))

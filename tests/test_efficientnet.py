"""Tests of the EfficientNet encoder: parameter counts against Keras, spectrogram shapes, stochastic depth, errors."""

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from shuffle_learn.models import efficientnet
from shuffle_learn.models.efficientnet import B0, TINY, EfficientNet, EfficientNetConfig

# Trainable parameters of Keras's ``keras.applications.EfficientNetB{0,3}`` (Keras 3.15; ImageNet head of 1000
# classes): convolutions, SE and classifier weights and biases, BatchNorm's gamma and beta. B0's is the published
# 5,288,548 (5,330,571 in all, less 42,023 running statistics and input normalisation); B3 checks the rounding of
# scaled widths and depths.
KERAS_TRAINABLE = {"b0": 5_288_548, "b3": 12_233_232}
B0_WITHOUT_HEAD = 5_288_548 - (1280 * 1000 + 1000)  # 4,007,548
B3 = EfficientNetConfig(width=1.2, depth=1.4)


def key(seed):
  """An "rbg" key: the model takes any key, and these compile faster than threefry on CPU."""
  return jax.random.key(seed, impl="rbg")


def num_params(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def abstract_init(model, shape):
  """Shapes of the variables, without computing them."""
  return jax.eval_shape(lambda x: model.init(key(0), x), jax.ShapeDtypeStruct(shape, jnp.float32))


def abstract_feature_map(model, shape):
  return jax.eval_shape(
      lambda x: model.init_with_output(key(0), x, method=EfficientNet.feature_map)[0],
      jax.ShapeDtypeStruct(shape, jnp.float32))


@functools.lru_cache(maxsize=None)
def tiny_params(shape=(4, 96, 64)):
  """Parameters of TINY with a 5-class head, from key 0 (jitted init, once per session: seconds)."""
  model = EfficientNet(TINY, num_classes=5)
  return jax.jit(lambda x: model.init(key(0), x))(jnp.zeros(shape))


def spectrograms(rng, shape=(4, 96, 64)):
  """Log-mel-like input, (batch, frames, mel)."""
  return jnp.asarray(rng.normal(size=shape), jnp.float32)


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_parameter_counts_match_keras(norm):
  b0 = dataclasses.replace(B0, norm=norm)
  variables = abstract_init(EfficientNet(b0, num_classes=1000), (1, 224, 224, 3))
  assert set(variables) == {"params"}  # stateless: no batch_stats
  assert num_params(variables) == KERAS_TRAINABLE["b0"]
  assert num_params(abstract_init(EfficientNet(b0), (1, 224, 224, 3))) == B0_WITHOUT_HEAD == 4_007_548
  # Scaled: widths rounded to multiples of 8, repeats rounded up (26 blocks); independent of the resolution.
  assert len(B3.blocks()) == 26
  assert num_params(abstract_init(EfficientNet(B3, num_classes=1000), (1, 64, 64, 3))) == KERAS_TRAINABLE["b3"]


def test_b0_blocks():
  blocks = B0.blocks()
  assert len(blocks) == 16
  assert [b.out_features for b in blocks] == [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112,
                                              192, 192, 192, 192, 320]
  assert blocks[0].se_features == 8 and blocks[1].se_features == 4 and blocks[-1].se_features == 48
  assert [b.stride for b in blocks if b.stride != (1, 1)] == [(2, 2)] * 4
  residual = [i for i, b in enumerate(blocks) if b.residual]
  assert residual == [2, 4, 6, 7, 9, 10, 12, 13, 14]
  np.testing.assert_allclose([b.drop_rate for b in blocks], 0.2 * np.arange(16) / 16)
  assert B0.features == 1280 and TINY.features == 320 and len(TINY.blocks()) == 10


def test_spectrogram_shapes():
  model = EfficientNet(B0)
  # (batch, frames, mel, 1): height is time. 96 frames x 64 mel -> 3 frames x 2 bands.
  fmap = abstract_feature_map(model, (2, 96, 64, 1))
  assert fmap.shape == (2, 3, 2, 1280)
  assert jax.eval_shape(efficientnet.frame_embeddings, fmap).shape == (2, 3, 1280)
  assert abstract_feature_map(model, (2, 96, 64)).shape == (2, 3, 2, 1280)  # channel axis added
  assert abstract_feature_map(model, (2, 64, 96, 1)).shape == (2, 2, 3, 1280)  # (mel, frames): transpose first
  assert B0.feature_map_shape(96, 64) == (3, 2) and B0.min_input_shape() == (32, 32)
  pooled = jax.eval_shape(lambda x: model.init_with_output(key(0), x)[0], jax.ShapeDtypeStruct((2, 96, 64, 1),
                                                                                                  jnp.float32))
  assert pooled.shape == (2, 1280)


def test_frame_embeddings_average_over_frequency(rng):
  fmap = rng.normal(size=(2, 3, 2, 5)).astype(np.float32)
  np.testing.assert_allclose(efficientnet.frame_embeddings(fmap), fmap.mean(axis=2), rtol=1e-6)


def test_tiny_train_step(rng):
  """A jitted forward + backward of TINY on log-mels: finite, every parameter gets a gradient, fast once compiled."""
  model = EfficientNet(TINY, num_classes=5)
  params = tiny_params()
  x, labels = spectrograms(rng), jnp.arange(4) % 5

  @jax.jit
  def step(params, x, rng):
    def loss(params):
      logits = model.apply(params, x, train=True, rngs={"dropout": rng})
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return jax.value_and_grad(loss)(params)

  start = time.perf_counter()
  jax.block_until_ready(step(params, x, key(1)))
  compiled = time.perf_counter() - start
  start = time.perf_counter()
  value, grads = jax.block_until_ready(step(params, x, key(2)))
  seconds = time.perf_counter() - start
  print(f"TINY train step on {x.shape}: compile + first step {compiled:.1f} s, then {seconds * 1e3:.0f} ms")
  assert seconds < 3.0
  assert np.isfinite(value)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.isfinite(grad).all(), path
    assert np.abs(grad).max() > 0, path


def test_eval_is_deterministic_and_stochastic_depth_acts_only_in_training(rng):
  params = tiny_params()
  x = spectrograms(rng)
  dropping = EfficientNet(dataclasses.replace(TINY, stochastic_depth=0.5, dropout_rate=0.0), num_classes=5)
  plain = EfficientNet(dataclasses.replace(TINY, stochastic_depth=0.0, dropout_rate=0.0), num_classes=5)

  @jax.jit
  def outputs(params, x):
    return dict(
        eval=dropping.apply(params, x),
        eval_again=dropping.apply(params, x, train=False, rngs={"dropout": key(1)}),
        plain_eval=plain.apply(params, x),
        plain_train=plain.apply(params, x, train=True),  # no rates: no rng needed
        train1=dropping.apply(params, x, train=True, rngs={"dropout": key(1)}),
        train1_again=dropping.apply(params, x, train=True, rngs={"dropout": key(1)}),
        train2=dropping.apply(params, x, train=True, rngs={"dropout": key(2)}),
        large=plain.apply(params, 1e6 * x),
        less_large=plain.apply(params, 1e4 * x),
    )

  out = jax.device_get(outputs(params, x))
  np.testing.assert_array_equal(out["eval"], out["eval_again"])
  np.testing.assert_array_equal(out["eval"], out["plain_eval"])  # the rate does not matter at eval
  np.testing.assert_allclose(out["plain_train"], out["plain_eval"], rtol=1e-5, atol=1e-6)  # stateless
  np.testing.assert_array_equal(out["train1"], out["train1_again"])
  assert not np.allclose(out["train1"], out["eval"])
  assert not np.allclose(out["train1"], out["train2"])
  # Large inputs: finite, and the same as smaller ones (the stem's norm follows a convolution without bias).
  assert np.isfinite(out["large"]).all()
  np.testing.assert_allclose(out["large"], out["less_large"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, field", [
    (dict(width=0), "width"),
    (dict(depth=-1.0), "depth"),
    (dict(stages=()), "stages"),
    (dict(stages=((1, 3, 1, 16, 1), (6, 3, 0, 24, 2))), r"stages\[1\]"),
    (dict(norm="batch"), "norm"),
    (dict(norm="group", norm_groups=3), "norm_groups"),
    (dict(stochastic_depth=1.0), "stochastic_depth"),
    (dict(dropout_rate=-0.1), "dropout_rate"),
    (dict(se_ratio=0.0), "se_ratio"),
    (dict(stem_features=0), "stem_features"),
])
def test_bad_config(kwargs, field):
  with pytest.raises(ValueError, match=f"^{field} "):
    EfficientNetConfig(**kwargs)


def test_bad_model_and_inputs():
  with pytest.raises(ValueError, match="^num_classes "):
    EfficientNet(TINY, num_classes=0)
  with pytest.raises(ValueError, match="^config "):
    EfficientNet("b0")
  with pytest.raises(ValueError, match="too small"):
    abstract_init(EfficientNet(TINY), (2, 16, 64))
  with pytest.raises(ValueError, match="^x must be"):
    abstract_init(EfficientNet(TINY), (2, 1, 96, 64, 1))
  with pytest.raises(ValueError, match="^feature_map must be"):
    efficientnet.frame_embeddings(jnp.zeros((2, 3, 1280)))


def test_stochastic_depth_drops_whole_residual_branches(rng):
  """Per example, a residual block in training returns its input, or input + branch / (1 - rate)."""
  block = efficientnet.BlockArgs(8, 8, 6, 3, (1, 1), se_features=2, drop_rate=0.5)
  module = efficientnet.MBConv(block, TINY)
  x = jnp.asarray(rng.normal(size=(16, 4, 4, 8)), jnp.float32)

  @jax.jit
  def branches(x):
    params = module.init(key(0), x)
    return (module.apply(params, x) - x,
            module.apply(params, x, train=True, rngs={"dropout": key(3)}) - x)

  branch, trained = jax.device_get(branches(x))
  kept = [bool(np.abs(t).max() > 0) for t in trained]
  assert 0 < sum(kept) < len(kept)
  for t, b, k in zip(trained, branch, kept):
    np.testing.assert_allclose(t, 2 * b if k else 0 * b, rtol=1e-5, atol=1e-5)

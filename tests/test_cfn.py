"""Tests of the Context Free Network: shapes, shared weights, normalisation, dropout, errors."""

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from shuffle_learn import ranking
from shuffle_learn.models import cfn
from shuffle_learn.models.cfn import CFN

# A size small enough to run many times: 2 convolutions, fc6 8, fc7 16, dropout 0.5.
TINY = cfn.CFNSize(
    conv_features=(4, 8),
    kernel_sizes=(3, 3),
    strides=(2, 1),
    pool_after=(True, False),
    pool_window=2,
    pool_stride=2,
    patch_features=8,
    embedding=16,
    dropout_rate=0.5,
)


def key(seed):
  """An "rbg" key: the model takes any key, and these compile several times faster than threefry on CPU."""
  return jax.random.key(seed, impl="rbg")


def num_params(tree):
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


@functools.lru_cache(maxsize=None)
def _init(size, num_outputs, normalize_patches, shape):
  model = CFN(size, num_outputs=num_outputs, normalize_patches=normalize_patches)
  return jax.jit(lambda x: model.init(key(0), x, train=False))(jnp.zeros(shape))


def init(model, x):
  """Parameters from key 0, jitted and cached per model and shape (compiling init takes seconds)."""
  return _init(model.size, model.num_outputs, model.normalize_patches, tuple(x.shape))


def abstract_init(model, x):
  """Shapes of the parameters, without computing them."""
  return jax.eval_shape(lambda x: model.init(key(0), x, train=False), x)


def apply(model, params, x, **kwargs):
  """Jitted ``apply(model, params, x, **kwargs)``; an rng in ``kwargs`` is a constant."""
  return jax.jit(lambda p, x: model.apply(p, x, **kwargs))(params, x)


# Shapes.


@pytest.mark.parametrize("size", [cfn.PAPER, cfn.SMALL, cfn.SMALL_BANDS], ids=["paper", "small", "small_bands"])
@pytest.mark.parametrize("shape", [(10, 51, 398), (8, 8, 398), (9, 6, 40, 3)])
@pytest.mark.parametrize("num_outputs", [None, 24])
def test_output_shapes(size, shape, num_outputs):
  num_outputs = num_outputs or shape[0]  # n scores, or k logits.
  model = CFN(size, num_outputs=num_outputs)
  x = jax.ShapeDtypeStruct((32,) + shape, jnp.float32)
  params = abstract_init(model, x)
  out = jax.eval_shape(lambda p, x: model.apply(p, x, train=False), params, x)
  emb = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.embed), params, x)
  feats = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.patch_features), params, x)
  conv = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.conv_embed), params, x)
  assert conv.shape == (32, shape[0] * 2 * size.conv_features[-1])
  assert out.shape == (32, num_outputs)
  assert emb.shape == (32, size.embedding)
  assert feats.shape == (32, shape[0], size.patch_features)


def test_paper_forward_smallest_patch():
  size = cfn.PAPER
  assert size.min_patch_shape() == (4, 4)
  model = CFN(size, num_outputs=3)
  x = jax.random.normal(key(1), (2, 3, 4, 4))
  params = init(model, x)
  out = apply(model, params, x, train=False)
  emb = apply(model, params, x, method=CFN.embed)
  assert out.shape == (2, 3) and emb.shape == (2, 4096)
  assert np.isfinite(out).all() and (np.asarray(emb) >= 0).all()


@pytest.mark.parametrize("shape", [(10, 6, 398), (4, 8, 16, 3), (1, 4, 4)])
def test_small_forward(shape):
  model = CFN(cfn.SMALL, num_outputs=shape[0])
  x = jax.random.normal(key(1), (2,) + shape)
  params = init(model, x)
  out = apply(model, params, x, train=False)
  assert out.shape == (2, shape[0]) and np.isfinite(out).all()


def test_head_is_a_dense_layer_on_the_embedding():
  model = CFN(TINY, num_outputs=5)
  x = jax.random.normal(key(1), (3, 5, 8, 12))
  params = init(model, x)
  out = apply(model, params, x, train=False)
  via_embed = apply(model, params, x, method=lambda m, x: m.head(m.embed(x)))
  np.testing.assert_allclose(out, via_embed, rtol=1e-6, atol=1e-6)


def test_feature_map_shapes():
  assert cfn.PAPER.feature_map_shape(51, 398) == (1, 11)
  assert cfn.PAPER.feature_map_shape(6, 398) == (1, 11)
  assert cfn.PAPER.feature_map_shape(3, 398) is None
  assert cfn.SMALL.feature_map_shape(51, 398) == (1, 12)
  assert cfn.SMALL.min_patch_shape() == (4, 4)
  # Strides along time only in the first convolution: 6 mel bins stay 6 rows.
  assert cfn.SMALL_BANDS.min_patch_shape() == (1, 4)
  assert cfn.SMALL_BANDS.feature_map_shape(6, 100) == (1, 3)
  assert cfn.SMALL.feature_map_shape(6, 100) == (1, 3)
  assert cfn.SMALL_BANDS.feature_map_shape(2, 100) == (1, 3)
  assert cfn.SMALL.feature_map_shape(2, 100) is None
  assert cfn.SMALL_BANDS.feature_map_shape(6, 3) is None


# Shared weights.


@pytest.mark.parametrize("size", [cfn.PAPER, cfn.SMALL, cfn.SMALL_BANDS], ids=["paper", "small", "small_bands"])
def test_backbone_params_do_not_grow_with_num_patches(size):
  counts, totals = [], []
  for n in (2, 5, 10):
    model = CFN(size, num_outputs=7)
    x = jax.ShapeDtypeStruct((1, n, 51, 398), jnp.float32)
    params = abstract_init(model, x)["params"]
    counts.append(num_params(params["backbone"]))
    totals.append(num_params(params))
    # One kernel per layer: no patch axis on any backbone parameter.
    assert params["backbone"]["Conv_0"]["kernel"].shape == (*(size.kernel_sizes[0],) * 2, 1, size.conv_features[0])
  assert counts[0] == counts[1] == counts[2]
  # Only fc7's input grows, by patch_features * embedding weights per patch.
  assert totals[1] - totals[0] == 3 * size.patch_features * size.embedding
  assert totals[2] - totals[1] == 5 * size.patch_features * size.embedding


def test_patch_features_permute_with_the_patches(rng):
  model = CFN(cfn.SMALL, num_outputs=6)
  x = jnp.asarray(rng.normal(size=(3, 6, 8, 40)), jnp.float32)
  params = init(model, x)
  feats = apply(model, params, x, method=CFN.patch_features)
  perm = rng.permutation(6)
  feats_perm = apply(model, params, x[:, perm], method=CFN.patch_features)
  np.testing.assert_allclose(feats_perm, feats[:, perm], rtol=1e-5, atol=1e-6)
  # The feature of a slot depends on its own patch only.
  x2 = x.at[:, 0].set(jnp.asarray(rng.normal(size=(3, 8, 40)), jnp.float32))
  feats2 = apply(model, params, x2, method=CFN.patch_features)
  np.testing.assert_allclose(feats2[:, 1:], feats[:, 1:], rtol=1e-5, atol=1e-6)
  assert not np.allclose(feats2[:, 0], feats[:, 0])


def test_backbone_equals_alexnet_on_each_patch(rng):
  model = CFN(TINY, num_outputs=4, normalize_patches=False)
  x = jnp.asarray(rng.normal(size=(2, 4, 8, 12)), jnp.float32)
  params = init(model, x)
  feats = apply(model, params, x, method=CFN.patch_features)
  backbone = {"params": params["params"]["backbone"]}
  conv = apply(model, params, x, method=CFN.conv_embed).reshape(2, 4, -1)
  for j in range(4):
    one, one_conv = cfn.AlexNet(TINY).apply(backbone, x[:, j, :, :, None])
    np.testing.assert_allclose(feats[:, j], one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv[:, j], one_conv, rtol=1e-5, atol=1e-6)


# TINY with the first convolution striding along time (width) only, as `small_bands` does.
TINY_BANDS = dataclasses.replace(TINY, strides=((1, 2), 1))


@pytest.mark.parametrize("size,first_stride", [(TINY, (2, 2)), (TINY_BANDS, (1, 2))], ids=["square", "time_only"])
def test_conv_embed_is_the_pooled_last_convolution(rng, size, first_stride):
  # An independent forward pass with lax.conv_general_dilated and
  # lax.reduce_window, from the parameters alone.
  model = CFN(size, num_outputs=4, normalize_patches=False)
  x = jnp.asarray(rng.normal(size=(3, 4, 8, 12)), jnp.float32)
  params = init(model, x)
  out = apply(model, params, x, method=CFN.conv_embed)
  assert out.shape == (3, 4 * 2 * size.conv_features[-1])
  p = params["params"]["backbone"]
  h = x.reshape(12, 8, 12, 1)
  for i, stride in enumerate((first_stride, (1, 1))):  # A pool after the first convolution only.
    h = jax.lax.conv_general_dilated(h, p[f"Conv_{i}"]["kernel"], stride, "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + p[f"Conv_{i}"]["bias"]
    h = jnp.maximum(h, 0)
    if i == 0:
      h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  expected = jnp.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2))], -1).reshape(3, -1)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  # fc6: the flattened map (no pool after the last convolution) through fc6 and a ReLU, slot order.
  fc6 = jnp.maximum(h.reshape(12, -1) @ p["fc6"]["kernel"] + p["fc6"]["bias"], 0).reshape(3, -1)
  np.testing.assert_allclose(apply(model, params, x, method=CFN.fc6_embed), fc6, rtol=1e-5, atol=1e-5)
  # Unlike fc7, the features of patch j depend on patch j only.
  x2 = x.at[:, 1].set(0.0)
  out2 = apply(model, params, x2, method=CFN.conv_embed).reshape(3, 4, -1)
  np.testing.assert_array_equal(out2[:, [0, 2, 3]], out.reshape(3, 4, -1)[:, [0, 2, 3]])


def test_head_scores_depend_on_the_slot(rng):
  # Patch features are concatenated in slot order: swapping two patches is not
  # the same as swapping their scores, so slot-specific scores can be learned.
  model = CFN(TINY, num_outputs=4)
  x = jnp.asarray(rng.normal(size=(2, 4, 8, 12)), jnp.float32)
  params = init(model, x)
  out = apply(model, params, x, train=False)
  perm = np.array([1, 0, 2, 3])
  out_perm = apply(model, params, x[:, perm], train=False)
  assert not np.allclose(out_perm, out[:, perm], atol=1e-4)


# Per-patch normalisation.


def test_normalize_patches_statistics(rng):
  x = jnp.asarray(rng.normal(3.0, 5.0, size=(2, 3, 6, 10, 2)), jnp.float32)
  y = cfn.normalize_patches(x)
  np.testing.assert_allclose(y.mean(axis=(2, 3, 4)), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.std(axis=(2, 3, 4)), 1.0, atol=1e-4)
  assert (cfn.normalize_patches(jnp.ones((1, 1, 4, 4, 1))) == 0).all()


def test_normalization_makes_output_invariant_to_patch_level_and_gain(rng):
  x = jnp.asarray(rng.normal(size=(2, 5, 8, 40)), jnp.float32)
  offset = jnp.array([0.0, 3.0, -10.0, 0.5, 100.0])[None, :, None, None]
  gain = jnp.array([1.0, 0.1, 7.0, 2.0, 0.5])[None, :, None, None]
  x2 = x * gain + offset
  for normalize in (True, False):
    model = CFN(cfn.SMALL, num_outputs=5, normalize_patches=normalize)
    params = init(model, x)
    out = apply(model, params, x, train=False)
    out2 = apply(model, params, x2, train=False)
    if normalize:
      np.testing.assert_allclose(out2, out, rtol=1e-3, atol=1e-3)
    else:
      assert not np.allclose(out2, out, rtol=1e-3, atol=1e-3)


# Transformations, dropout, gradients.


def test_jit_equals_eager(rng):
  model = CFN(TINY, num_outputs=4)
  x = jnp.asarray(rng.normal(size=(3, 4, 8, 12)), jnp.float32)
  params = init(model, x)
  eager = model.apply(params, x, train=False)
  jitted = jax.jit(lambda p, x: model.apply(p, x, train=False))(params, x)
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
  dropout_key = key(3)
  eager_t = model.apply(params, x, train=True, rngs={"dropout": dropout_key})
  jitted_t = jax.jit(lambda p, x, k: model.apply(p, x, train=True, rngs={"dropout": k}))(params, x, dropout_key)
  np.testing.assert_allclose(jitted_t, eager_t, rtol=1e-5, atol=1e-6)


def test_dropout_only_when_training(rng):
  model = CFN(TINY, num_outputs=4)
  x = jnp.asarray(rng.normal(size=(3, 4, 8, 12)), jnp.float32)
  params = init(model, x)
  eval_out = apply(model, params, x, train=False)  # No rng needed.
  np.testing.assert_array_equal(apply(model, params, x, train=False), eval_out)
  np.testing.assert_array_equal(apply(model, params, x, method=CFN.embed), apply(model, params, x, method=CFN.embed))
  with pytest.raises(flax.errors.InvalidRngError):
    apply(model, params, x, train=True)
  a = apply(model, params, x, train=True, rngs={"dropout": key(1)})
  b = apply(model, params, x, train=True, rngs={"dropout": key(1)})
  c = apply(model, params, x, train=True, rngs={"dropout": key(2)})
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, eval_out) and not np.allclose(a, c)
  # Without dropout, training and evaluation agree.
  model0 = CFN(dataclasses.replace(TINY, dropout_rate=0.0), num_outputs=4)
  np.testing.assert_allclose(
      apply(model0, params, x, train=True, rngs={"dropout": key(1)}),
      apply(model0, params, x, train=False), rtol=1e-6)


def test_dropout_masks_differ_between_patches():
  model = CFN(TINY, num_outputs=4, normalize_patches=False)
  x = jnp.tile(jax.random.normal(key(1), (2, 1, 8, 12)), (1, 4, 1, 1))  # 4 equal patches.
  params = init(model, x)
  feats = apply(model, params, x, train=True, method=CFN.patch_features, rngs={"dropout": key(5)})
  assert not np.allclose(feats[:, 0], feats[:, 1])
  feats_eval = apply(model, params, x, method=CFN.patch_features)
  np.testing.assert_allclose(feats_eval[:, 0], feats_eval[:, 1], rtol=1e-6)


def test_gradient_finite(rng):
  model = CFN(TINY, num_outputs=4)
  x = jnp.asarray(rng.normal(size=(3, 4, 8, 12)), jnp.float32)
  params = init(model, x)
  target = jnp.tile(jnp.arange(1.0, 5.0), (3, 1))

  def loss(p):
    scores = model.apply(p, x, train=True, rngs={"dropout": key(0)})
    return ranking.fenchel_young_loss(key(1), scores, target).mean()

  grads = jax.jit(jax.grad(loss))(params)
  for leaf in jax.tree.leaves(grads):
    assert np.isfinite(leaf).all()
  assert np.abs(grads["params"]["backbone"]["Conv_0"]["kernel"]).sum() > 0


def test_a_few_steps_reduce_the_ranking_loss(rng):
  model = CFN(dataclasses.replace(TINY, dropout_rate=0.0), num_outputs=4)
  x = jnp.asarray(rng.normal(size=(8, 4, 8, 12)), jnp.float32)
  target = jnp.asarray(np.stack([rng.permutation(4) + 1 for _ in range(8)]), jnp.float32)
  params = init(model, x)
  opt = optax.adam(1e-2)
  state = opt.init(params)

  def loss(p):
    return ranking.rank_mse_loss(model.apply(p, x, train=False), target).mean()

  @jax.jit
  def step(p, s):
    value, g = jax.value_and_grad(loss)(p)
    updates, s = opt.update(g, s, p)
    return optax.apply_updates(p, updates), s, value

  first = jax.jit(loss)(params)
  for _ in range(30):
    params, state, _ = step(params, state)
  assert jax.jit(loss)(params) < 0.5 * first


# Errors.


@pytest.mark.parametrize("num_outputs", [0, -1, 2.5, True])
def test_bad_num_outputs(num_outputs):
  with pytest.raises(ValueError, match="num_outputs"):
    CFN(cfn.SMALL, num_outputs=num_outputs)


def test_bad_size_type():
  with pytest.raises(ValueError, match="size"):
    CFN({"conv_features": (4,)}, num_outputs=3)


@pytest.mark.parametrize("field,value", [
    ("conv_features", ()),
    ("kernel_sizes", (3,)),
    ("strides", (2, 0)),
    ("pool_after", (True,)),
    ("pool_window", 0),
    ("pool_stride", 1.5),
    ("patch_features", 0),
    ("embedding", -4),
    ("dropout_rate", 1.0),
    ("dropout_rate", -0.1),
])
def test_bad_cfn_size(field, value):
  with pytest.raises(ValueError, match=field):
    dataclasses.replace(TINY, **{field: value})


def test_cfn_size_is_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    cfn.PAPER.embedding = 10


@pytest.mark.parametrize("patch", [(3, 398), (51, 3), (1, 1)])
def test_patch_too_small_for_paper_strides(patch):
  model = CFN(cfn.PAPER, num_outputs=2)
  x = jax.ShapeDtypeStruct((1, 2) + patch, jnp.float32)
  with pytest.raises(ValueError, match="strides"):
    abstract_init(model, x)


@pytest.mark.parametrize("shape", [(2, 8, 12), (1, 2, 3, 8, 12, 1), (2, 0, 8, 12)])
def test_bad_input_rank(shape):
  model = CFN(TINY, num_outputs=2)
  with pytest.raises(ValueError, match="x must"):
    init(model, jnp.zeros(shape))

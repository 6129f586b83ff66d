"""Tests of the Context Free Network and its backbones: shapes, shared weights, normalisation, dropout, errors."""

import dataclasses
import functools
import re

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from shuffle_learn import models
from shuffle_learn import ranking
from shuffle_learn.models import alexnet
from shuffle_learn.models import cfn
from shuffle_learn.models import resnet
from shuffle_learn.models.cfn import CFN

# A size small enough to run many times: the module's TINY narrowed to 2 convolutions of 4 and 8 channels
# (strides 2 and 1, one pool), fc6 8, fc7 16, with dropout 0.5.
TINY = dataclasses.replace(alexnet.TINY, conv_features=(4, 8), strides=(2, 1), pool_after=(True, False),
                           patch_features=8, embedding=16, dropout_rate=0.5)


ALEXNET_SIZES = [alexnet.PAPER, alexnet.SMALL, alexnet.SMALL_BANDS]


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


@pytest.mark.parametrize("size", ALEXNET_SIZES, ids=["paper", "small", "small_bands"])
@pytest.mark.parametrize("shape", [(10, 51, 398), (8, 8, 398), (9, 6, 40, 3)])
@pytest.mark.parametrize("num_outputs", [None, 24])
def test_output_shapes(size, shape, num_outputs):
  num_outputs = num_outputs or shape[0]  # n scores, or k logits.
  model = CFN(size, num_outputs=num_outputs, normalize_patches=True)
  x = jax.ShapeDtypeStruct((32,) + shape, jnp.float32)
  params = abstract_init(model, x)
  out = jax.eval_shape(lambda p, x: model.apply(p, x, train=False), params, x)
  emb = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.embed), params, x)
  feats = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.patch_features), params, x)
  conv = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.conv_embed), params, x)
  assert conv.shape == (32, shape[0] * 2 * size.conv_channels)
  assert out.shape == (32, num_outputs)
  assert emb.shape == (32, size.embedding)
  assert feats.shape == (32, shape[0], size.patch_features)


def test_paper_forward_smallest_patch():
  size = alexnet.PAPER
  assert size.min_patch_shape() == (4, 4)
  model = CFN(size, num_outputs=3, normalize_patches=True)
  x = jax.random.normal(key(1), (2, 3, 4, 4))
  params = init(model, x)
  out = apply(model, params, x, train=False)
  emb = apply(model, params, x, method=CFN.embed)
  assert out.shape == (2, 3) and emb.shape == (2, 4096)
  assert np.isfinite(out).all() and (np.asarray(emb) >= 0).all()


@pytest.mark.parametrize("shape", [(10, 6, 398), (4, 8, 16, 3), (1, 4, 4)])
def test_small_forward(shape):
  model = CFN(alexnet.SMALL, num_outputs=shape[0], normalize_patches=True)
  x = jax.random.normal(key(1), (2,) + shape)
  params = init(model, x)
  out = apply(model, params, x, train=False)
  assert out.shape == (2, shape[0]) and np.isfinite(out).all()


def test_head_is_a_dense_layer_on_the_embedding():
  model = CFN(TINY, num_outputs=5, normalize_patches=True)
  x = jax.random.normal(key(1), (3, 5, 8, 12))
  params = init(model, x)
  out = apply(model, params, x, train=False)
  via_embed = apply(model, params, x, method=lambda m, x: m.head(m.embed(x)))
  np.testing.assert_allclose(out, via_embed, rtol=1e-6, atol=1e-6)


def test_feature_map_shapes():
  assert alexnet.PAPER.feature_map_shape(51, 398) == (1, 11)
  assert alexnet.PAPER.feature_map_shape(6, 398) == (1, 11)
  assert alexnet.PAPER.feature_map_shape(3, 398) is None
  assert alexnet.SMALL.feature_map_shape(51, 398) == (1, 12)
  assert alexnet.SMALL.min_patch_shape() == (4, 4)
  # Strides along time only in the first convolution: 6 mel bins stay 6 rows.
  assert alexnet.SMALL_BANDS.min_patch_shape() == (1, 4)
  assert alexnet.SMALL_BANDS.feature_map_shape(6, 100) == (1, 3)
  assert alexnet.SMALL.feature_map_shape(6, 100) == (1, 3)
  assert alexnet.SMALL_BANDS.feature_map_shape(2, 100) == (1, 3)
  assert alexnet.SMALL.feature_map_shape(2, 100) is None
  assert alexnet.SMALL_BANDS.feature_map_shape(6, 3) is None


# Shared weights.


@pytest.mark.parametrize("size", ALEXNET_SIZES, ids=["paper", "small", "small_bands"])
def test_backbone_params_do_not_grow_with_num_patches(size):
  counts, totals = [], []
  for n in (2, 5, 10):
    model = CFN(size, num_outputs=7, normalize_patches=True)
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
  model = CFN(alexnet.SMALL, num_outputs=6, normalize_patches=True)
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
    one, one_conv = alexnet.AlexNet(TINY).apply(backbone, x[:, j, :, :, None])
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
  assert out.shape == (3, 4 * 2 * size.conv_channels)
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
  model = CFN(TINY, num_outputs=4, normalize_patches=True)
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
    model = CFN(alexnet.SMALL, num_outputs=5, normalize_patches=normalize)
    params = init(model, x)
    out = apply(model, params, x, train=False)
    out2 = apply(model, params, x2, train=False)
    if normalize:
      np.testing.assert_allclose(out2, out, rtol=1e-3, atol=1e-3)
    else:
      assert not np.allclose(out2, out, rtol=1e-3, atol=1e-3)


# Transformations, dropout, gradients.


def test_jit_equals_eager(rng):
  model = CFN(TINY, num_outputs=4, normalize_patches=True)
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
  model = CFN(TINY, num_outputs=4, normalize_patches=True)
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
  model0 = CFN(dataclasses.replace(TINY, dropout_rate=0.0), num_outputs=4, normalize_patches=True)
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


def ranking_loss_gradient(model, params, x):
  """The gradient of the perturbed Fenchel-Young loss of 4 scores against the identity, with dropout; all finite."""
  target = jnp.tile(jnp.arange(1.0, 5.0), (x.shape[0], 1))

  def loss(p):
    scores = model.apply(p, x, train=True, rngs={"dropout": key(0)})
    return ranking.fenchel_young_loss(key(1), scores, target).mean()

  grads = jax.jit(jax.grad(loss))(params)
  for leaf in jax.tree.leaves(grads):
    assert np.isfinite(leaf).all()
  return grads


def test_gradient_finite(rng):
  model = CFN(TINY, num_outputs=4, normalize_patches=True)
  x = jnp.asarray(rng.normal(size=(3, 4, 8, 12)), jnp.float32)
  grads = ranking_loss_gradient(model, init(model, x), x)
  assert np.abs(grads["params"]["backbone"]["Conv_0"]["kernel"]).sum() > 0


def test_a_few_steps_reduce_the_ranking_loss(rng):
  model = CFN(dataclasses.replace(TINY, dropout_rate=0.0), num_outputs=4, normalize_patches=True)
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
    CFN(alexnet.SMALL, num_outputs=num_outputs, normalize_patches=True)


def test_bad_size_type():
  with pytest.raises(ValueError, match="size"):
    CFN({"conv_features": (4,)}, num_outputs=3, normalize_patches=True)


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
def test_bad_alexnet_size(field, value):
  with pytest.raises(ValueError, match=field):
    dataclasses.replace(TINY, **{field: value})


def test_sizes_are_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    alexnet.PAPER.embedding = 10
  with pytest.raises(dataclasses.FrozenInstanceError):
    resnet.RESNET_SMALL.embedding = 10


@pytest.mark.parametrize("patch", [(3, 398), (51, 3), (1, 1)])
def test_patch_too_small_for_paper_strides(patch):
  model = CFN(alexnet.PAPER, num_outputs=2, normalize_patches=True)
  x = jax.ShapeDtypeStruct((1, 2) + patch, jnp.float32)
  with pytest.raises(ValueError, match="strides"):
    abstract_init(model, x)


@pytest.mark.parametrize("shape", [(2, 8, 12), (1, 2, 3, 8, 12, 1), (2, 0, 8, 12)])
def test_bad_input_rank(shape):
  model = CFN(TINY, num_outputs=2, normalize_patches=True)
  with pytest.raises(ValueError, match="x must"):
    init(model, jnp.zeros(shape))


def test_normalize_patches_is_required():
  with pytest.raises(TypeError, match="normalize_patches"):
    CFN(TINY, num_outputs=2)
  with pytest.raises(ValueError, match="normalize_patches"):
    CFN(TINY, num_outputs=2, normalize_patches="yes")


# The presets by name and the backbone registry.


def test_sizes_and_build():
  assert set(models.SIZES) == {"tiny", "small", "small_bands", "paper", "resnet_small", "resnet_tiny"}
  for name, size in models.SIZES.items():
    model = models.build(name, num_outputs=3, normalize_patches=False)
    assert isinstance(model, CFN)
    assert model.size is size and model.num_outputs == 3 and model.normalize_patches is False
    assert type(size) in cfn.BACKBONES
  x = jax.ShapeDtypeStruct((1, 2, 8, 8, 3), jnp.float32)
  alexnet_params = abstract_init(models.build("tiny", num_outputs=2, normalize_patches=False), x)["params"]
  resnet_params = abstract_init(models.build("resnet_tiny", num_outputs=2, normalize_patches=False), x)["params"]
  assert set(alexnet_params) == set(resnet_params) == {"backbone", "fc7", "head"}
  assert set(alexnet_params["backbone"]) == {"Conv_0", "Conv_1", "fc6"}
  assert set(resnet_params["backbone"]) == {"stem", "stem_norm", "stage0_block0", "stage1_block0", "fc6"}
  with pytest.raises(ValueError, match="size_name"):
    models.build("resnet", num_outputs=3, normalize_patches=False)


def test_from_config_builds_the_configured_cfn():
  config = ml_collections.ConfigDict({"model": {"size": "resnet_tiny", "normalize_patches": True}})
  model = models.from_config(config, 7)
  assert model == models.build("resnet_tiny", num_outputs=7, normalize_patches=True)
  assert model.size is resnet.RESNET_TINY and model.num_outputs == 7 and model.normalize_patches is True


# The ResNet backbone.


def test_resnet_feature_map_shapes():
  assert resnet.RESNET_SMALL.conv_channels == 64
  assert resnet.RESNET_SMALL.min_patch_shape() == (4, 4)
  assert resnet.RESNET_SMALL.feature_map_shape(32, 32) == (8, 8)
  assert resnet.RESNET_SMALL.feature_map_shape(51, 398) == (13, 100)
  assert resnet.RESNET_SMALL.feature_map_shape(3, 32) is None
  assert resnet.RESNET_TINY.min_patch_shape() == (2, 2)
  assert resnet.RESNET_TINY.feature_map_shape(9, 17) == (5, 9)
  bands = dataclasses.replace(resnet.RESNET_SMALL, stem_stride=(1, 2), stage_strides=(1, (1, 2), (1, 2)))
  assert bands.min_patch_shape() == (1, 8)
  assert bands.feature_map_shape(6, 100) == (6, 13)


@pytest.mark.parametrize("size", [resnet.RESNET_SMALL, resnet.RESNET_TINY], ids=["resnet_small", "resnet_tiny"])
@pytest.mark.parametrize("num_outputs", [None, 24])
def test_resnet_output_shapes(size, num_outputs):
  num_outputs = num_outputs or 9
  model = CFN(size, num_outputs=num_outputs, normalize_patches=False)
  x = jax.ShapeDtypeStruct((32, 9, 32, 32, 3), jnp.float32)
  params = abstract_init(model, x)
  assert params["params"]["backbone"]["stem"]["kernel"].shape == (3, 3, 3, size.stem_features)
  out = jax.eval_shape(lambda p, x: model.apply(p, x, train=False), params, x)
  emb = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.embed), params, x)
  fc6 = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.fc6_embed), params, x)
  feats = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.patch_features), params, x)
  conv = jax.eval_shape(lambda p, x: model.apply(p, x, method=CFN.conv_embed), params, x)
  assert out.shape == (32, num_outputs)
  assert emb.shape == (32, size.embedding)
  assert fc6.shape == (32, 9 * size.patch_features)
  assert feats.shape == (32, 9, size.patch_features)
  assert conv.shape == (32, 9 * 2 * size.conv_channels)


def test_resnet_forward_on_image_tiles():
  model = CFN(resnet.RESNET_TINY, num_outputs=9, normalize_patches=True)
  x = jax.random.normal(key(1), (2, 9, 32, 32, 3))
  params = init(model, x)
  out = apply(model, params, x, train=False)
  emb = apply(model, params, x, method=CFN.embed)
  assert out.shape == (2, 9) and emb.shape == (2, resnet.RESNET_TINY.embedding)
  assert np.isfinite(out).all() and (np.asarray(emb) >= 0).all()
  # A 4-D input is one channel.
  gray = x[..., 0]
  params1 = init(model, gray)
  np.testing.assert_array_equal(apply(model, params1, gray, train=False),
                                apply(model, params1, gray[..., None], train=False))


def test_resnet_backbone_params_do_not_grow_with_num_patches():
  size = resnet.RESNET_SMALL
  counts, totals = [], []
  for n in (2, 5, 9):
    model = CFN(size, num_outputs=7, normalize_patches=False)
    params = abstract_init(model, jax.ShapeDtypeStruct((1, n, 32, 32, 3), jnp.float32))["params"]
    counts.append(num_params(params["backbone"]))
    totals.append(num_params(params))
    # One kernel per layer: no patch axis on any backbone parameter.
    assert params["backbone"]["stem"]["kernel"].shape == (3, 3, 3, size.stem_features)
    assert params["backbone"]["stage2_block0"]["conv2"]["kernel"].shape == (3, 3, 64, 64)
  assert counts[0] == counts[1] == counts[2]
  assert totals[1] - totals[0] == 3 * size.patch_features * size.embedding
  assert totals[2] - totals[1] == 4 * size.patch_features * size.embedding


def test_resnet_patch_features_permute_with_the_patches(rng):
  model = CFN(resnet.RESNET_TINY, num_outputs=9, normalize_patches=True)
  x = jnp.asarray(rng.normal(size=(2, 9, 16, 16, 3)), jnp.float32)
  params = init(model, x)
  feats = apply(model, params, x, method=CFN.patch_features)
  perm = rng.permutation(9)
  feats_perm = apply(model, params, x[:, perm], method=CFN.patch_features)
  np.testing.assert_allclose(feats_perm, feats[:, perm], rtol=1e-5, atol=1e-6)
  # The feature of a slot depends on its own patch only.
  x2 = x.at[:, 0].set(jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32))
  feats2 = apply(model, params, x2, method=CFN.patch_features)
  np.testing.assert_allclose(feats2[:, 1:], feats[:, 1:], rtol=1e-5, atol=1e-6)
  assert not np.allclose(feats2[:, 0], feats[:, 0])


def test_resnet_backbone_equals_resnet_on_each_patch(rng):
  size = resnet.RESNET_TINY
  model = CFN(size, num_outputs=9, normalize_patches=False)
  x = jnp.asarray(rng.normal(size=(2, 9, 12, 16, 3)), jnp.float32)
  params = init(model, x)
  feats = apply(model, params, x, method=CFN.patch_features)
  conv = apply(model, params, x, method=CFN.conv_embed).reshape(2, 9, -1)
  one_patch = jax.jit(lambda p, x: resnet.ResNet(size).apply(p, x))
  for j in range(9):
    one, one_conv = one_patch({"params": params["params"]["backbone"]}, x[:, j])
    np.testing.assert_allclose(feats[:, j], one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv[:, j], one_conv, rtol=1e-5, atol=1e-6)


def _conv(h, p, stride):
  out = jax.lax.conv_general_dilated(h, p["kernel"], stride, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return out + p["bias"] if "bias" in p else out


def _norm(h, p, name):
  """LayerNorm over channels if the parameters hold ``name``."""
  if name not in p:
    return h
  mean = h.mean(-1, keepdims=True)
  var = ((h - mean) ** 2).mean(-1, keepdims=True)
  return (h - mean) / jnp.sqrt(var + 1e-6) * p[name]["scale"] + p[name]["bias"]


@pytest.mark.parametrize("layer_norm", [True, False])
def test_resnet_conv_embed_is_the_pooled_last_block(rng, layer_norm):
  # An independent forward pass of RESNET_TINY with lax.conv_general_dilated,
  # from the parameters alone: stem, an identity block, a projection block.
  size = dataclasses.replace(resnet.RESNET_TINY, layer_norm=layer_norm)
  model = CFN(size, num_outputs=4, normalize_patches=False)
  x = jnp.asarray(rng.normal(size=(3, 4, 9, 12, 2)), jnp.float32)
  params = init(model, x)
  p = params["params"]["backbone"]
  assert "projection" not in p["stage0_block0"] and "projection" in p["stage1_block0"]
  assert ("bias" in p["stem"]) != layer_norm
  h = jnp.maximum(_norm(_conv(x.reshape(12, 9, 12, 2), p["stem"], (1, 1)), p, "stem_norm"), 0)
  for block, stride in (("stage0_block0", (1, 1)), ("stage1_block0", (2, 2))):
    b = p[block]
    y = jnp.maximum(_norm(_conv(h, b["conv1"], stride), b, "norm1"), 0)
    y = _norm(_conv(y, b["conv2"], (1, 1)), b, "norm2")
    shortcut = _norm(_conv(h, b["projection"], stride), b, "projection_norm") if "projection" in b else h
    h = jnp.maximum(y + shortcut, 0)
  assert h.shape == (12, 5, 6, 16)
  expected = jnp.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2))], -1).reshape(3, -1)
  np.testing.assert_allclose(apply(model, params, x, method=CFN.conv_embed), expected, rtol=1e-5, atol=1e-5)
  fc6 = jnp.maximum(h.reshape(12, -1) @ p["fc6"]["kernel"] + p["fc6"]["bias"], 0).reshape(3, -1)
  np.testing.assert_allclose(apply(model, params, x, method=CFN.fc6_embed), fc6, rtol=1e-5, atol=1e-5)


def test_resnet_is_stateless_and_its_gradient_finite(rng):
  size = dataclasses.replace(resnet.RESNET_TINY, dropout_rate=0.5)
  model = CFN(size, num_outputs=4, normalize_patches=True)
  x = jnp.asarray(rng.normal(size=(3, 4, 8, 8, 3)), jnp.float32)
  params = init(model, x)
  assert set(params) == {"params"}  # No batch statistics.
  model0 = CFN(resnet.RESNET_TINY, num_outputs=4, normalize_patches=True)
  np.testing.assert_array_equal(apply(model0, params, x, train=True, rngs={"dropout": key(1)}),
                                apply(model0, params, x, train=False))
  backbone = ranking_loss_gradient(model, params, x)["params"]["backbone"]
  assert np.abs(backbone["stem"]["kernel"]).sum() > 0
  assert np.abs(backbone["stage1_block0"]["projection"]["kernel"]).sum() > 0


@pytest.mark.parametrize("size", [
    resnet.RESNET_SMALL,
    dataclasses.replace(resnet.RESNET_TINY, stem_stride=(1, 2), stage_strides=(2, (2, 1)), blocks_per_stage=(2, 1)),
], ids=["resnet_small", "pair_strides"])
@pytest.mark.parametrize("patch", [(32, 32), (9, 17), (6, 100), (4, 4)])
def test_resnet_feature_map_shape_is_the_real_one(size, patch):
  module = resnet.ResNet(size)
  x = jax.ShapeDtypeStruct((2,) + patch + (3,), jnp.float32)
  params = jax.eval_shape(lambda x: module.init(key(0), x), x)
  last = f"stage{len(size.stage_features) - 1}_block{size.blocks_per_stage[-1] - 1}"
  _, state = jax.eval_shape(
      lambda p, x: module.apply(p, x, capture_intermediates=lambda m, _: isinstance(m, resnet.ResidualBlock),
                                mutable=["intermediates"]), params, x)
  height, width = size.feature_map_shape(*patch)
  assert state["intermediates"][last]["__call__"][0].shape == (2, height, width, size.conv_channels)
  assert params["params"]["fc6"]["kernel"].shape == (height * width * size.conv_channels, size.patch_features)


@pytest.mark.parametrize("patch", [(1, 8), (8, 1), (1, 1)])
def test_patch_too_small_for_resnet_strides(patch):
  assert resnet.RESNET_TINY.feature_map_shape(*patch) is None
  model = CFN(resnet.RESNET_TINY, num_outputs=2, normalize_patches=False)
  x = jax.ShapeDtypeStruct((1, 2) + patch + (3,), jnp.float32)
  with pytest.raises(ValueError, match=re.escape(f"patches of shape {patch}")):
    abstract_init(model, x)


@pytest.mark.parametrize("field,value", [
    ("stage_features", ()),
    ("stage_features", (8, 0)),
    ("stage_strides", (1, 0)),
    ("stage_strides", (1, (2, 2, 2))),
    ("blocks_per_stage", (1,)),
    ("stem_features", 0),
    ("stem_stride", (1, 2, 3)),
    ("patch_features", 0),
    ("embedding", 1.5),
    ("dropout_rate", 1.0),
    ("layer_norm", 1),
])
def test_bad_resnet_size(field, value):
  with pytest.raises(ValueError, match=field):
    dataclasses.replace(resnet.RESNET_TINY, **{field: value})

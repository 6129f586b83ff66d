"""Per-frame embeddings: the backbones' feature maps, `CFN.frame_embed` and the frame embedders.

Checked against independent forward passes (`jax.lax.conv_general_dilated`
and `jax.lax.reduce_window` from the parameters alone), against the backbone
applied patch by patch and assembled by hand with NumPy, and against the
parameters of the code before the feature maps existed.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shuffle_learn.data import frontend
from shuffle_learn.data import patches as patches_lib
from shuffle_learn.evaluators import embeddings
from shuffle_learn.models import alexnet
from shuffle_learn.models import cfn
from shuffle_learn.models import resnet
from shuffle_learn.models.cfn import CFN

# TINY with a LayerNorm after every convolution and a pool after the last one: the map must be taken
# after the last LayerNorm and ReLU, before the last pool.
TINY_NORM = dataclasses.replace(alexnet.TINY, layer_norm=True)
# No pool after the last convolution: its map is also what fc6 flattens.
TINY_NO_LAST_POOL = dataclasses.replace(alexnet.TINY, pool_after=(True, False))
RESNET_PAIRS = dataclasses.replace(resnet.RESNET_TINY, stem_stride=(1, 2), stage_strides=(2, (2, 1)),
                                   blocks_per_stage=(2, 1))

ALEXNET_SIZES = {"paper": alexnet.PAPER, "small": alexnet.SMALL, "small_bands": alexnet.SMALL_BANDS,
                 "tiny": alexnet.TINY, "tiny_norm": TINY_NORM, "tiny_no_last_pool": TINY_NO_LAST_POOL}
RESNET_SIZES = {"resnet_small": resnet.RESNET_SMALL, "resnet_tiny": resnet.RESNET_TINY, "resnet_pairs": RESNET_PAIRS}


def key(seed):
  return jax.random.key(seed, impl="rbg")


def _jit_apply(module, **kwargs):
  return jax.jit(lambda p, x: module.apply(p, x, **kwargs))


# ----------------------------------------------------------------------------
# The backbones' feature maps.


@pytest.mark.parametrize("name", list(ALEXNET_SIZES) + list(RESNET_SIZES))
@pytest.mark.parametrize("patch", [(51, 398), (6, 100), (8, 12), (16, 16), (4, 4), (32, 9)])
def test_conv_map_shape_is_the_real_one(name, patch):
  size = {**ALEXNET_SIZES, **RESNET_SIZES}[name]
  module = cfn.BACKBONES[type(size)](size)
  x = jax.ShapeDtypeStruct((2,) + patch + (1,), jnp.float32)
  expected = size.conv_map_shape(*patch)
  if size.feature_map_shape(*patch) is None:
    assert expected is None
    return
  out, params = jax.eval_shape(lambda x: module.init_with_output(key(0), x, feature_map=True), x)
  assert out.shape == (2, *expected, size.conv_channels)
  assert "fc6" not in params["params"]  # No fc6 when initialised for the map.
  if isinstance(size, resnet.ResNetSize) or not size.pool_after[-1]:
    assert expected == size.feature_map_shape(*patch)  # No pool after it: the map fc6 flattens.


def test_conv_map_shape_values():
  # SMALL on a 6 x 398 band: 398 / 4 = 100 frames, pooled to 50, pooled to 25, conv3 keeps 25; its pool
  # would give 12.
  assert alexnet.SMALL.conv_map_shape(6, 398) == (1, 25)
  assert alexnet.SMALL.feature_map_shape(6, 398) == (1, 12)
  # SMALL_BANDS strides along time only: 6 bins -> pooled to 3 -> pooled to 1.
  assert alexnet.SMALL_BANDS.conv_map_shape(6, 398) == (1, 25)
  assert alexnet.SMALL_BANDS.conv_map_shape(64, 100) == (16, 6)
  # PAPER: 51 x 398 -> conv1 13 x 100 -> pool 6 x 49 -> pool 2 x 24; conv5 stays 2 x 24, its pool 1 x 11.
  assert alexnet.PAPER.conv_map_shape(51, 398) == (2, 24)
  assert alexnet.PAPER.feature_map_shape(51, 398) == (1, 11)
  assert alexnet.SMALL.conv_map_shape(2, 100) is None
  assert resnet.RESNET_SMALL.conv_map_shape(51, 398) == resnet.RESNET_SMALL.feature_map_shape(51, 398) == (13, 100)


def _conv(h, p, stride):
  out = jax.lax.conv_general_dilated(h, p["kernel"], stride, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return out + p["bias"] if "bias" in p else out


def _layer_norm(h, p):
  mean = h.mean(-1, keepdims=True)
  var = ((h - mean) ** 2).mean(-1, keepdims=True)
  return (h - mean) / jnp.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def test_alexnet_feature_map_is_the_last_convolution_before_its_pool(rng):
  # TINY_NORM: conv (stride 2) -> LayerNorm -> ReLU -> 2x2 pool -> conv (stride 2) -> LayerNorm -> ReLU
  # -> [the map] -> 2x2 pool -> fc6.
  size = TINY_NORM
  x = jnp.asarray(rng.normal(size=(3, 16, 24, 1)), jnp.float32)
  module = alexnet.AlexNet(size)
  params = jax.jit(module.init)(key(0), x)
  p = params["params"]
  assert set(p) == {"Conv_0", "LayerNorm_0", "Conv_1", "LayerNorm_1", "fc6"}
  h = jnp.maximum(_layer_norm(_conv(x, p["Conv_0"], (2, 2)), p["LayerNorm_0"]), 0)
  h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  h = jnp.maximum(_layer_norm(_conv(h, p["Conv_1"], (2, 2)), p["LayerNorm_1"]), 0)
  assert h.shape == (3, *size.conv_map_shape(16, 24), size.conv_channels) == (3, 2, 3, 16)
  # A model initialised normally accepts feature_map=True.
  out = _jit_apply(module, feature_map=True)(params, x)
  np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-5)
  assert np.abs(out).max() > 0
  # The pooled conv feature of feature_map=False is this map's mean and max over positions.
  _, pooled = _jit_apply(module)(params, x)
  np.testing.assert_allclose(pooled, np.c_[np.asarray(h).mean(axis=(1, 2)), np.asarray(h).max(axis=(1, 2))],
                             rtol=1e-5, atol=1e-5)
  # Initialised with feature_map=True: the same convolutions and norms, no fc6.
  map_params = jax.jit(lambda k, x: module.init(k, x, feature_map=True))(key(0), x)
  assert set(map_params["params"]) == set(p) - {"fc6"}
  for name in map_params["params"]:
    jax.tree.map(np.testing.assert_array_equal, map_params["params"][name], p[name])
  np.testing.assert_array_equal(_jit_apply(module, feature_map=True)(map_params, x), out)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_resnet_feature_map_is_the_last_block(rng, layer_norm):
  size = dataclasses.replace(resnet.RESNET_TINY, layer_norm=layer_norm)
  x = jnp.asarray(rng.normal(size=(2, 9, 12, 2)), jnp.float32)
  module = resnet.ResNet(size)
  params = jax.jit(module.init)(key(0), x)
  # An independent forward pass: stem, an identity block, a projection block of stride 2.
  p = params["params"]
  norm = lambda h, b, name: _layer_norm(h, b[name]) if name in b else h
  h = jnp.maximum(norm(_conv(x, p["stem"], (1, 1)), p, "stem_norm"), 0)
  for block, stride in (("stage0_block0", (1, 1)), ("stage1_block0", (2, 2))):
    b = p[block]
    y = jnp.maximum(norm(_conv(h, b["conv1"], stride), b, "norm1"), 0)
    y = norm(_conv(y, b["conv2"], (1, 1)), b, "norm2")
    shortcut = norm(_conv(h, b["projection"], stride), b, "projection_norm") if "projection" in b else h
    h = jnp.maximum(y + shortcut, 0)
  assert h.shape == (2, *size.conv_map_shape(9, 12), 16) == (2, 5, 6, 16)
  np.testing.assert_allclose(_jit_apply(module, feature_map=True)(params, x), h, rtol=1e-5, atol=1e-5)
  map_params = jax.jit(lambda k, x: module.init(k, x, feature_map=True))(key(0), x)
  assert set(map_params["params"]) == set(p) - {"fc6"}


# ----------------------------------------------------------------------------
# The default parameters are those of the code before the feature maps.

# `CFN(alexnet.SMALL, num_outputs=10, normalize_patches=False).init(jax.random.key(0), x, train=False)` for x of
# shape (2, 10, 6, 40), computed by the code before the feature maps and frame_embed existed (commit 5d82169):
# every leaf's shape, the sum of its values (float64) and its first value. Biases are zeros.
SMALL_PARAMS_BEFORE = {
    ("backbone", "Conv_0", "kernel"): ((3, 3, 1, 16), 2.4547062064521015, -0.9088904857635498),
    ("backbone", "Conv_1", "kernel"): ((3, 3, 16, 32), -2.3973199782631127, -0.12736867368221283),
    ("backbone", "Conv_2", "kernel"): ((3, 3, 32, 64), -3.705170666211643, 0.1772100180387497),
    ("backbone", "fc6", "kernel"): ((64, 128), 32.93615187798969, -0.2209518998861313),
    ("fc7", "kernel"): ((1280, 256), -47.04140573489523, -0.0011253259144723415),
    ("head", "kernel"): ((256, 10), 5.545277702898602, 0.12610287964344025),
    ("backbone", "Conv_0", "bias"): ((16,), 0.0, 0.0),
    ("backbone", "Conv_1", "bias"): ((32,), 0.0, 0.0),
    ("backbone", "Conv_2", "bias"): ((64,), 0.0, 0.0),
    ("backbone", "fc6", "bias"): ((128,), 0.0, 0.0),
    ("fc7", "bias"): ((256,), 0.0, 0.0),
    ("head", "bias"): ((10,), 0.0, 0.0),
}


def test_cfn_params_are_those_of_the_code_before_frame_embed():
  model = CFN(alexnet.SMALL, num_outputs=10, normalize_patches=False)
  x = jax.random.normal(jax.random.key(7), (2, 10, 6, 40))
  init = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))
  params = init(x)
  leaves = {tuple(k.key for k in path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  assert set(leaves) == {("params",) + name for name in SMALL_PARAMS_BEFORE}
  for name, (shape, total, first) in SMALL_PARAMS_BEFORE.items():
    value = leaves[("params",) + name]
    assert value.shape == shape, name
    np.testing.assert_allclose(value.astype(np.float64).sum(), total, rtol=1e-5, atol=1e-5, err_msg=str(name))
    np.testing.assert_allclose(value.ravel()[0], first, rtol=1e-6, atol=1e-7, err_msg=str(name))
  # Calling frame_embed changes nothing: init again gives the same parameters, bit for bit.
  frames = jax.jit(lambda p, x: model.apply(p, x, method=CFN.frame_embed))(params, x)
  assert frames.shape == (2, alexnet.SMALL.conv_map_shape(6, 40)[1], 10 * 64) == (2, 2, 640)
  jax.tree.map(np.testing.assert_array_equal, init(x), params)
  # Initialised through frame_embed: the backbone's convolutions with the same values, nothing else.
  frame_params = jax.jit(lambda x: model.init(jax.random.key(0), x, method=CFN.frame_embed))(x)
  assert set(frame_params["params"]) == {"backbone"}
  assert set(frame_params["params"]["backbone"]) == {"Conv_0", "Conv_1", "Conv_2"}
  for name, value in frame_params["params"]["backbone"].items():
    jax.tree.map(np.testing.assert_array_equal, value, params["params"]["backbone"][name])


# ----------------------------------------------------------------------------
# CFN.frame_embed


@pytest.mark.parametrize("size,shape,n_cols,expected", [
    (alexnet.SMALL, (10, 6, 398), 1, (25, 640)),  # 10 bands of 6 mel bins over 398 frames.
    (alexnet.SMALL, (10, 6, 398), 2, (50, 320)),  # 5 bands x 2 segments of 6 x 398 each.
    (alexnet.SMALL_BANDS, (16, 4, 99), 4, (24, 256)),  # 4 bands x 4 segments of 4 x 99: 25, 12, 6 frames.
    (alexnet.PAPER, (3, 51, 398), 1, (24, 768)),
    (resnet.RESNET_SMALL, (4, 16, 40, 1), 2, (20, 128)),  # 2 x 2 tiles; 16 x 40 -> 4 x 10.
    (resnet.RESNET_TINY, (6, 9, 12, 3), 3, (18, 32)),  # 2 x 3 tiles; 9 x 12 -> 5 x 6.
])
def test_frame_embed_shapes(size, shape, n_cols, expected):
  model = CFN(size, num_outputs=shape[0], normalize_patches=True)
  x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
  params = jax.eval_shape(lambda x: model.init(key(0), x, train=False), x)
  out = jax.eval_shape(lambda p, x: model.apply(p, x, n_cols, method=CFN.frame_embed), params, x)
  height, width = size.conv_map_shape(*shape[1:3])
  n_rows = shape[0] // n_cols
  assert out.shape == (2, n_cols * width, n_rows * size.conv_channels) == (2,) + expected


def _manual_frames(size, params, x, n_rows, n_cols):
  """The backbone alone on every patch (``feature_map=True``), averaged over height, placed by hand."""
  backbone = cfn.BACKBONES[type(size)](size)
  one_patch = _jit_apply(backbone, feature_map=True)
  variables = {"params": params["params"]["backbone"]}
  maps = [np.asarray(one_patch(variables, x[:, j])) for j in range(n_rows * n_cols)]  # (batch, h', w', c)
  _, height, width, channels = maps[0].shape
  out = np.zeros((x.shape[0], n_cols * width, n_rows * channels), np.float32)
  for row in range(n_rows):
    for col in range(n_cols):
      out[:, col * width:(col + 1) * width, row * channels:(row + 1) * channels] = (
          maps[row * n_cols + col].mean(axis=1))
  return out


@pytest.mark.parametrize("size,n_rows,n_cols,patch", [
    (alexnet.TINY, 4, 1, (8, 24, 1)),
    (TINY_NORM, 2, 3, (8, 24, 1)),
    (alexnet.SMALL_BANDS, 3, 2, (6, 40, 1)),
    (resnet.RESNET_TINY, 2, 2, (9, 12, 2)),
], ids=["tiny_bands", "tiny_norm_tiles", "small_bands_tiles", "resnet_tiles"])
@pytest.mark.parametrize("normalize", [False, True])
def test_frame_embed_equals_the_backbone_on_each_patch(rng, size, n_rows, n_cols, patch, normalize):
  model = CFN(size, num_outputs=n_rows * n_cols, normalize_patches=normalize)
  x = jnp.asarray(rng.normal(1.0, 2.0, size=(3, n_rows * n_cols) + patch), jnp.float32)
  params = jax.jit(lambda x: model.init(key(0), x, train=False))(x)
  out = jax.jit(lambda p, x: model.apply(p, x, n_cols, method=CFN.frame_embed))(params, x)
  expected = _manual_frames(size, params, cfn.normalize_patches(x) if normalize else x, n_rows, n_cols)
  assert out.shape == expected.shape
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert np.abs(expected).max() > 0


def test_frame_embed_of_a_4d_input_is_one_channel(rng):
  model = CFN(alexnet.TINY, num_outputs=4, normalize_patches=False)
  x = jnp.asarray(rng.normal(size=(2, 4, 8, 24)), jnp.float32)
  params = jax.jit(lambda x: model.init(key(0), x, train=False))(x)
  embed = jax.jit(lambda p, x: model.apply(p, x, method=CFN.frame_embed))
  np.testing.assert_array_equal(embed(params, x), embed(params, x[..., None]))


@pytest.mark.parametrize("n_rows,n_cols", [(5, 1), (2, 3)])
def test_frame_embed_is_context_free(rng, n_rows, n_cols):
  # Changing patch (row, col) changes frame block col, feature block row, and nothing else.
  size = alexnet.TINY
  model = CFN(size, num_outputs=n_rows * n_cols, normalize_patches=True)
  x = jnp.asarray(rng.normal(size=(2, n_rows * n_cols, 8, 24)), jnp.float32)
  params = jax.jit(lambda x: model.init(key(0), x, train=False))(x)
  embed = jax.jit(lambda p, x: model.apply(p, x, n_cols, method=CFN.frame_embed))
  out = np.asarray(embed(params, x))
  width, channels = size.conv_map_shape(8, 24)[1], size.conv_channels
  for row in range(n_rows):
    for col in range(n_cols):
      changed = x.at[:, row * n_cols + col].set(jnp.asarray(rng.normal(size=(2, 8, 24)), jnp.float32))
      diff = np.abs(np.asarray(embed(params, changed)) - out).max(axis=0)  # (frames, features)
      block = np.zeros_like(diff, bool)
      block[col * width:(col + 1) * width, row * channels:(row + 1) * channels] = True
      assert (diff[~block] == 0).all()
      assert diff[block].max() > 1e-3


def test_frame_embed_follows_time_across_segments():
  # A spectrogram (frequency, time) cut as `AudioInput` cuts it: 2 bands x 4 segments of 32 frames. One burst
  # of energy in all bins at 4 frames: the frames that change are those of its segment, near its time.
  size = dataclasses.replace(alexnet.TINY, strides=((1, 2), 1), pool_after=(True, False))  # w' = w / 4.
  n_rows, n_cols, frames = 2, 4, 128
  model = CFN(size, num_outputs=n_rows * n_cols, normalize_patches=False)
  spec = np.zeros((1, 16, frames), np.float32)
  params = jax.jit(lambda x: model.init(key(0), x, train=False))(patches_lib.to_patches(spec, n_rows, n_cols))
  embed = jax.jit(lambda p, x: model.apply(p, x, n_cols, method=CFN.frame_embed))
  base = np.asarray(embed(params, patches_lib.to_patches(spec, n_rows, n_cols)))
  assert base.shape == (1, frames // 4, n_rows * 16)  # One embedding frame per 4 spectrogram frames.
  for start in (8, 44, 84, 116, 124):
    burst = spec.copy()
    burst[..., start:start + 4] = 5.0
    diff = np.abs(np.asarray(embed(params, patches_lib.to_patches(burst, n_rows, n_cols))) - base)[0].max(-1)
    changed = np.flatnonzero(diff > 0)
    segment = start // 32
    assert changed.size > 0
    # Within its segment's 8 frames, and within 2 frames of start / 4 (the 3-wide kernels of both convolutions
    # and the 2-wide pool spread the burst).
    assert segment * 8 <= changed.min() and changed.max() < (segment + 1) * 8
    assert start // 4 - 2 <= changed.min() and changed.max() <= (start + 3) // 4 + 2


def test_frame_embed_rejects_a_bad_n_cols(rng):
  model = CFN(alexnet.TINY, num_outputs=6, normalize_patches=False)
  x = jnp.zeros((1, 6, 8, 24))
  params = jax.jit(lambda x: model.init(key(0), x, train=False))(x)
  with pytest.raises(ValueError, match="multiple of n_cols=4"):
    model.apply(params, x, 4, method=CFN.frame_embed)
  for n_cols in (0, 1.5):
    with pytest.raises(ValueError, match="n_cols"):
      model.apply(params, x, n_cols, method=CFN.frame_embed)


# ----------------------------------------------------------------------------
# embeddings.frame_embedder, embeddings.logmel_frame_embedder


@pytest.mark.parametrize("n_rows,n_cols", [(None, None), (2, 2)], ids=["bands", "tiles"])
def test_frame_embedder_is_frame_embed_of_the_first_samples(rng, tiny_experiment, n_rows, n_cols):
  model, params, input_ = tiny_experiment
  if n_rows:  # The same convolutions on another grid (frame_embed reads no fc6).
    input_ = dataclasses.replace(input_, n_rows=n_rows, n_cols=n_cols)
  audio = (0.1 * rng.standard_normal((3, input_.num_samples))).astype(np.float32)
  embed = embeddings.frame_embedder(model, params, input_)
  out = embed(audio)
  height, width, _ = input_.patch_shape
  frames = alexnet.TINY.conv_map_shape(height, width)[1]
  assert out.dtype == np.float32 and out.shape == (3, input_.n_cols * frames, input_.n_rows * 16)
  assert model.normalize_patches  # The tiny config standardises every patch before the backbone.
  patches = cfn.normalize_patches(input_(jnp.asarray(audio)))
  expected = _manual_frames(alexnet.TINY, params, patches, input_.n_rows, input_.n_cols)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert np.abs(out).max() > 0
  longer = np.c_[audio, rng.standard_normal((3, 500)).astype(np.float32)]
  np.testing.assert_array_equal(embed(longer), out)


def test_logmel_frame_embedder_is_the_log_mel_frames(rng):
  num_samples = 1600  # 0.1 s: 8 frames of 25 ms every 10 ms.
  audio = (0.1 * rng.standard_normal((3, num_samples + 800))).astype(np.float32)
  for num_mel_bins in (64, 16):
    out = embeddings.logmel_frame_embedder(num_samples, num_mel_bins)(audio)
    expected = np.asarray(frontend.log_mel_spectrogram(audio[:, :num_samples], num_mel_bins=num_mel_bins))
    assert out.dtype == np.float32 and out.shape == (3, 8, num_mel_bins) == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # Its mean and std over frames are the clip embedding of `logmel_embedder`.
    clip = embeddings.logmel_embedder(num_samples, num_mel_bins)(audio)
    np.testing.assert_allclose(clip, np.c_[out.mean(axis=1), out.std(axis=1)], rtol=1e-4, atol=1e-4)
    # Pooled: mean and std of every band over windows of 3 frames (3, 3 and the last 2).
    pooled = embeddings.logmel_frame_embedder(num_samples, num_mel_bins, pool=3)(audio)
    windows = [expected[:, 0:3], expected[:, 3:6], expected[:, 6:8]]
    reference = np.stack([np.concatenate([w.mean(axis=1), w.std(axis=1)], axis=-1) for w in windows], axis=1)
    assert pooled.shape == (3, 3, 2 * num_mel_bins)
    np.testing.assert_allclose(pooled, reference, rtol=1e-4, atol=2e-4)
    # pool=8 covers the clip: the clip embedding again.
    np.testing.assert_allclose(embeddings.logmel_frame_embedder(num_samples, num_mel_bins, pool=8)(audio)[:, 0],
                               clip, rtol=1e-4, atol=2e-4)
  with pytest.raises(ValueError, match="^pool"):
    embeddings.logmel_frame_embedder(num_samples, 16, pool=0)

"""Tests of the image and video inputs of the pretext task: NumPy references, augmentation, a train step on each."""

import itertools

import chex
import jax
import ml_collections
import numpy as np
import pytest

from experiments.configs import tiny
from shuffle_learn import models
from shuffle_learn import parallel
from shuffle_learn import pretext as pretext_lib
from shuffle_learn import train
from shuffle_learn.pretext import image as image_lib
from shuffle_learn.pretext import video as video_lib
from shuffle_learn.pretext import ImageInput
from shuffle_learn.pretext import VideoInput

LOSSES = ("perturbed_fy", "fast_soft_rank", "mse", "fixed_permutation")


def images(rng, batch, height=64, width=64, channels=3):
  """Random uint8 pixels: no two crops of a cell are equal."""
  return rng.integers(0, 256, size=(batch, height, width, channels), dtype=np.uint8)


def np_cells(images, n_rows, n_cols):
  """(batch, n, cell_h, cell_w, C) float32 in [0, 1], row-major; the remainders at the bottom and right dropped."""
  x = images.astype(np.float32) / np.float32(255)
  cell_h, cell_w = images.shape[1] // n_rows, images.shape[2] // n_cols
  return np.stack([x[:, r * cell_h:(r + 1) * cell_h, c * cell_w:(c + 1) * cell_w]
                   for r, c in itertools.product(range(n_rows), range(n_cols))], axis=1)


def np_tiles(images, n_rows, n_cols, gap, tile_normalization):
  """The tiles without a key: every cell cropped by ``gap`` around its centre, then standardised if asked."""
  cells = np_cells(images, n_rows, n_cols).astype(np.float64)
  cell_h, cell_w = cells.shape[2:4]
  start = gap // 2
  tiles = cells[:, :, start:start + cell_h - gap, start:start + cell_w - gap]
  if tile_normalization:
    mean = tiles.mean(axis=(2, 3, 4), keepdims=True)
    var = tiles.var(axis=(2, 3, 4), keepdims=True)
    tiles = (tiles - mean) / np.sqrt(var + image_lib.TILE_EPS)
  return tiles


def crop_offsets(images, tiles, n_rows, n_cols, gap):
  """Each tile's ``(row, col)`` offset inside its cell, found by trying all ``(gap + 1)^2``; exactly one must match."""
  cells = np_cells(images, n_rows, n_cols)
  tile_h, tile_w = tiles.shape[2:4]
  matches = np.zeros(tiles.shape[:2] + (gap + 1, gap + 1), bool)
  for dy, dx in itertools.product(range(gap + 1), repeat=2):
    crop = cells[:, :, dy:dy + tile_h, dx:dx + tile_w]
    matches[..., dy, dx] = np.all(np.abs(crop - tiles) <= 1e-6, axis=(2, 3, 4))
  np.testing.assert_array_equal(matches.sum(axis=(-2, -1)), 1)  # Every tile is one crop of its own cell.
  return np.stack(np.divmod(matches.reshape(tiles.shape[:2] + (-1,)).argmax(-1), gap + 1), axis=-1)


def neighbour_separations(offsets, input_):
  """Pixels between the tiles of neighbouring cells: ``(horizontal, vertical)``, flattened; 0 means they touch."""
  cell_h, cell_w = input_.cell_shape
  tile_h, tile_w, _ = input_.patch_shape
  offsets = offsets.reshape(offsets.shape[0], input_.n_rows, input_.n_cols, 2)
  rows = np.arange(input_.n_rows)[None, :, None] * cell_h + offsets[..., 0]  # First pixel row of each tile.
  cols = np.arange(input_.n_cols)[None, None, :] * cell_w + offsets[..., 1]  # First pixel column.
  horizontal = cols[:, :, 1:] - (cols[:, :, :-1] + tile_w)
  vertical = rows[:, 1:, :] - (rows[:, :-1, :] + tile_h)
  return horizontal.ravel(), vertical.ravel()


# Images without a key: centred crops.


@pytest.mark.parametrize("tile_normalization", [False, True])
@pytest.mark.parametrize("height,width,n_rows,n_cols,gap", [
    (64, 64, 3, 3, 4),  # Cells of 21 (one row and column left over), tiles of 17.
    (71, 50, 2, 4, 3),  # Cells 35 x 12 (1 row, 2 columns left over), tiles 32 x 9, an odd gap.
])
def test_tiles_without_key_match_numpy(rng, height, width, n_rows, n_cols, gap, tile_normalization):
  input_ = ImageInput(height=height, width=width, n_rows=n_rows, n_cols=n_cols, gap=gap,
                      tile_normalization=tile_normalization, color_jitter=0.3, channel_drop=True)
  x = images(rng, 2, height, width)
  tiles = np.asarray(input_(x))  # No key: no crop offset, jitter or channel dropping.
  cell_h, cell_w = height // n_rows, width // n_cols
  assert input_.cell_shape == (cell_h, cell_w)
  assert input_.patch_shape == (cell_h - gap, cell_w - gap, 3)
  assert tiles.shape == (2, n_rows * n_cols, cell_h - gap, cell_w - gap, 3) and tiles.dtype == np.float32
  np.testing.assert_allclose(tiles, np_tiles(x, n_rows, n_cols, gap, tile_normalization), rtol=1e-5, atol=1e-5)
  if tile_normalization:
    np.testing.assert_allclose(tiles.mean(axis=(2, 3, 4)), 0.0, atol=1e-5)
    np.testing.assert_allclose(tiles.std(axis=(2, 3, 4)), 1.0, atol=1e-4)
  # The remainders at the bottom and right play no part.
  changed = x.copy()
  changed[:, n_rows * cell_h:] = 255 - changed[:, n_rows * cell_h:]
  changed[:, :, n_cols * cell_w:] = 255 - changed[:, :, n_cols * cell_w:]
  np.testing.assert_array_equal(input_(changed), tiles)


def test_float_images_are_taken_as_in_zero_one(rng):
  input_ = ImageInput(tile_normalization=False)
  x = images(rng, 2)
  np.testing.assert_allclose(input_(x.astype(np.float32) / 255), input_(x), rtol=1e-6, atol=1e-7)


# Images with a key: random crops and colour augmentation.


def test_tiles_with_key_are_crops_inside_their_cells(rng):
  input_ = ImageInput(gap=4, tile_normalization=False)
  x = images(rng, 16)
  tiles = np.asarray(input_(x, jax.random.key(0)))
  assert tiles.shape == (16, 9, 17, 17, 3)
  offsets = crop_offsets(x, tiles, 3, 3, 4)
  assert offsets.min() >= 0 and offsets.max() <= 4
  # Rows and columns each take every offset in [0, gap].
  for axis in range(2):
    np.testing.assert_array_equal(np.unique(offsets[..., axis]), np.arange(5))
  # Not all centred: the crop is random.
  assert np.mean(np.all(offsets == 2, axis=-1)) < 0.2


def test_tiles_never_overlap_and_are_apart_by_the_gap_on_average(rng):
  gap = 4
  input_ = ImageInput(gap=gap, tile_normalization=False)
  x = images(rng, 16)
  separations = []
  for seed in range(4):
    offsets = crop_offsets(x, np.asarray(input_(x, jax.random.key(seed))), 3, 3, gap)
    separations.append(np.concatenate(neighbour_separations(offsets, input_)))
  separations = np.concatenate(separations)  # 16 images x 12 neighbour pairs x 4 keys = 768.
  # gap - offset + next offset: in [0, 2 gap], both ends reached, mean gap (std 2 / sqrt(768) = 0.07).
  assert separations.min() == 0 and separations.max() == 2 * gap
  assert abs(separations.mean() - gap) < 0.3
  # Without a key every pair of neighbours is exactly gap apart.
  centred = crop_offsets(x, np.asarray(input_(x)), 3, 3, gap)
  np.testing.assert_array_equal(np.concatenate(neighbour_separations(centred, input_)), gap)


def test_same_key_same_tiles_other_key_other_offsets(rng):
  input_ = ImageInput(gap=4, tile_normalization=True, color_jitter=0.1, channel_drop=True)
  x = images(rng, 4)
  first = np.asarray(input_(x, jax.random.key(1)))
  np.testing.assert_array_equal(input_(x, jax.random.key(1)), first)
  assert not np.allclose(input_(x, jax.random.key(2)), first)
  plain = ImageInput(gap=4, tile_normalization=False)
  offsets = [crop_offsets(x, np.asarray(plain(x, jax.random.key(seed))), 3, 3, 4) for seed in (1, 2)]
  assert np.mean(np.all(offsets[0] == offsets[1], axis=-1)) < 0.5  # 1/25 agree by chance.


def test_color_jitter_shifts_each_tile_and_channel_by_a_constant(rng):
  jitter = 0.1
  input_ = ImageInput(gap=0, tile_normalization=False, color_jitter=jitter)
  x = images(rng, 4)
  reference = np_tiles(x, 3, 3, 0, tile_normalization=False)
  np.testing.assert_allclose(input_(x), reference, atol=1e-6)  # No key, no jitter.
  shift = np.asarray(input_(x, jax.random.key(0)), np.float64) - reference  # (batch, n, h, w, C)
  np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :, :1, :1], shift.shape), atol=1e-6)
  shift = shift[:, :, 0, 0]  # (batch, n, C)
  assert np.all(np.abs(shift) <= jitter + 1e-6)
  # Independent per tile and channel, of either sign, spread over the range.
  assert len(np.unique(np.round(shift, 5))) > 0.9 * shift.size
  assert shift.min() < -jitter / 2 and shift.max() > jitter / 2


def test_channel_drop_keeps_one_channel_per_tile(rng):
  input_ = ImageInput(gap=0, tile_normalization=False, channel_drop=True)
  x = images(rng, 4)
  reference = np_tiles(x, 3, 3, 0, tile_normalization=False)
  np.testing.assert_allclose(input_(x), reference, atol=1e-6)  # No key, every channel kept.
  tiles = np.asarray(input_(x, jax.random.key(0)), np.float64)
  kept = np.all(np.abs(tiles - reference) <= 1e-6, axis=(2, 3))  # (batch, n, C)
  np.testing.assert_array_equal(kept.sum(-1), 1)
  kept_std = np.where(kept, tiles.std(axis=(2, 3)), 0.0).sum(-1, keepdims=True)
  dropped_std = np.where(kept, 0.0, tiles.std(axis=(2, 3)))
  assert np.all(dropped_std <= 0.02 * kept_std)
  assert np.all(np.where(kept, 1.0, dropped_std) > 0)  # Noise, not zeros.
  assert len(np.unique(kept.argmax(-1))) == 3  # The kept channel is drawn per tile.


def test_channel_drop_leaves_grey_images_alone(rng):
  input_ = ImageInput(channels=1, gap=0, tile_normalization=False, channel_drop=True)
  x = images(rng, 2, channels=1)
  np.testing.assert_allclose(input_(x, jax.random.key(0)), np_tiles(x, 3, 3, 0, False), atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(channels=2), r"^channels must be one of \(1, 3\), got 2"),
    (dict(gap=21), r"^gap must be an integer in \[0, 20\], got 21"),  # Cells of 64 // 3 = 21.
    (dict(height=71, width=50, n_rows=2, n_cols=4, gap=12), r"^gap must be an integer in \[0, 11\]"),
    (dict(gap=-1), r"^gap must be"),
    (dict(n_rows=0), r"^n_rows must be an integer in \[1, 64\], got 0"),
    (dict(n_cols=65), r"^n_cols must be an integer in \[1, 64\], got 65"),
    (dict(n_rows=1, n_cols=1), r"at least 2 tiles"),
    (dict(height=0), r"^height must be"),
    (dict(color_jitter=-0.1), r"^color_jitter must be a finite number >= 0"),
    (dict(tile_normalization=1), r"^tile_normalization must be a bool"),
    (dict(channel_drop="yes"), r"^channel_drop must be a bool"),
])
def test_image_input_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ImageInput(**kwargs)


@pytest.mark.parametrize("shape", [(2, 64, 64, 1), (2, 64, 48, 3), (64, 64, 3)])
def test_image_input_rejects_images_of_another_shape(shape):
  with pytest.raises(ValueError, match=r"^images must be \(batch, 64, 64, 3\)"):
    ImageInput()(np.zeros(shape, np.uint8))


# Video.


def np_frames(videos, normalization):
  x = videos.astype(np.float64) / 255
  if normalization == "example":
    mean = x.mean(axis=(1, 2, 3, 4), keepdims=True)
    var = x.var(axis=(1, 2, 3, 4), keepdims=True)
    x = (x - mean) / np.sqrt(var + video_lib.NORMALIZE_EPS)
  return x


@pytest.mark.parametrize("normalization", video_lib.NORMALIZATIONS)
def test_video_patches_are_the_frames(rng, normalization):
  input_ = VideoInput(num_frames=6, height=16, width=12, channels=3, normalization=normalization)
  videos = rng.integers(0, 256, size=(3, 6, 16, 12, 3), dtype=np.uint8)
  videos[1] //= 4  # A darker clip: standardised on its own.
  patches = np.asarray(input_(videos, jax.random.key(0)))  # The key is unused.
  assert patches.shape == (3, 6, 16, 12, 3) and patches.dtype == np.float32
  assert input_.num_patches == 6 and input_.patch_shape == (16, 12, 3)
  np.testing.assert_allclose(patches, np_frames(videos, normalization), rtol=1e-5, atol=1e-5)
  if normalization == "example":
    np.testing.assert_allclose(patches.mean(axis=(1, 2, 3, 4)), 0.0, atol=1e-5)
    np.testing.assert_allclose(patches.std(axis=(1, 2, 3, 4)), 1.0, atol=1e-4)
    # Per clip, not per frame: the frames keep their levels relative to each other.
    assert np.ptp(patches.mean(axis=(2, 3, 4)), axis=1).min() > 1e-2
  # Reversing a clip's frames reverses its patches.
  np.testing.assert_allclose(input_(videos[:, ::-1]), patches[:, ::-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 5, 16, 16, 3), (2, 6, 16, 16, 1), (2, 6, 8, 16, 3), (6, 16, 16, 3)])
def test_video_input_rejects_clips_of_another_shape(shape):
  with pytest.raises(ValueError, match=r"^videos must be \(batch, 6, 16, 16, 3\)"):
    VideoInput(num_frames=6, height=16, width=16)(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_frames=1), r"^num_frames must be an integer >= 2, got 1"),
    (dict(channels=2), r"^channels must be one of"),
    (dict(width=0), r"^width must be"),
    (dict(normalization="frame"), r"^normalization must be one of"),
])
def test_video_input_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    VideoInput(**kwargs)


# Configs, and a train step on image tiles and frame stacks.


def image_config(loss, size="resnet_tiny"):
  """The tiny config on 3 x 3 tiles of 48 x 48 x 3 images (gap 4: tiles of 12 x 12)."""
  config = tiny.get_config()
  config.pretext.modality = "image"
  config.pretext.loss = loss
  config.pretext.n_rows = config.pretext.n_cols = 3
  config.pretext.num_permutations = 24
  config.model.size = size
  config.image = ml_collections.ConfigDict(dict(
      height=48, width=48, channels=3, gap=4, tile_normalization=True, color_jitter=0.05, channel_drop=False))
  return config


def video_config(loss, size="tiny"):
  """The tiny config on clips of 6 frames of 16 x 16 x 3."""
  config = tiny.get_config()
  config.pretext.modality = "video"
  config.pretext.loss = loss
  config.pretext.num_permutations = 24
  config.model.size = size
  config.video = ml_collections.ConfigDict(dict(
      num_frames=6, height=16, width=16, channels=3, normalization="example"))
  return config


def test_inputs_from_config():
  assert pretext_lib.input_from_config(image_config("mse")) == ImageInput(
      height=48, width=48, channels=3, n_rows=3, n_cols=3, gap=4, tile_normalization=True, color_jitter=0.05,
      channel_drop=False)
  assert pretext_lib.input_from_config(video_config("mse")) == VideoInput(
      num_frames=6, height=16, width=16, channels=3, normalization="example")
  pretext = pretext_lib.from_config(video_config("fixed_permutation"))
  assert pretext.num_patches == 6 and pretext.num_outputs == 24


@pytest.mark.parametrize("make,field,value,match", [
    (image_config, "image.gap", 16, r"^config\.image\.gap must be an integer in \[0, 15\]"),
    (image_config, "image.channels", 4, r"^config\.image\.channels must be one of"),
    (image_config, "pretext.n_cols", 0, r"^config\.pretext\.n_cols must be"),
    (video_config, "video.num_frames", 1, r"^config\.video\.num_frames must be"),
    (video_config, "video.normalization", "frame", r"^config\.video\.normalization must be one of"),
])
def test_input_config_errors_name_the_field(make, field, value, match):
  config = make("mse")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=match):
    pretext_lib.from_config(config)


def test_input_config_reports_a_missing_section():
  config = image_config("mse")
  del config["image"]
  with pytest.raises(ValueError, match=r"^config\.image\.\w+ is missing"):
    pretext_lib.from_config(config)


def run_steps(config, raw, num_steps=3):
  """``num_steps`` jitted train steps on the batch ``raw``; the losses, accuracies and whether every leaf moved."""
  pretext = pretext_lib.from_config(config)
  model = models.from_config(config, pretext.num_outputs)
  experiment = train.Experiment(config=config, model=model, optimizer=train.make_optimizer(config),
                                pretext=pretext, mesh=parallel.make_mesh())
  state = experiment.init(0)
  before = jax.tree.map(np.array, state.params)  # The step donates the state.
  chex.clear_trace_counter()
  step = experiment.jit_train_step()
  batch = parallel.device_batch(pretext.input, experiment.mesh, {pretext.input.raw_key: raw, "label": np.zeros(8)})
  losses, accuracies = [], []
  for i in range(num_steps):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
    accuracies.append(float(metrics["partial_ranks_accuracy"]))
  moved = jax.tree.map(lambda a, b: not np.allclose(a, np.asarray(b)), before, state.params)
  return np.array(losses), np.array(accuracies), jax.tree.leaves(moved)


# Every objective on each modality with the AlexNet TINY (about 4 s each to compile
# on a 2-core CPU), the ResNet once; its other objectives (7 s each) with -m slow.
STEP_CASES = ([("image", "tiny", loss) for loss in LOSSES] + [("video", "tiny", loss) for loss in LOSSES]
              + [("image", "resnet_tiny", "perturbed_fy")]
              + [pytest.param("image", "resnet_tiny", loss, marks=pytest.mark.slow) for loss in LOSSES[1:]])


@pytest.mark.parametrize("modality,size,loss", STEP_CASES)
def test_train_steps_on_random_inputs(rng, modality, size, loss):
  if modality == "image":
    config, raw = image_config(loss, size), images(rng, 8, 48, 48)
  else:
    config, raw = video_config(loss, size), rng.integers(0, 256, size=(8, 6, 16, 16, 3), dtype=np.uint8)
  losses, accuracies, moved = run_steps(config, raw)
  assert np.all(np.isfinite(losses))
  assert np.all((accuracies >= 0) & (accuracies <= 1))
  assert moved and all(moved)

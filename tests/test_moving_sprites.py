"""Moving-sprite clips: schema, determinism, splits, and labels that only the frame order tells apart."""

import math
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from shuffle_learn.data import loader
from shuffle_learn.data import moving_sprites
from shuffle_learn.data import schema
from shuffle_learn.data import sprites
from shuffle_learn.data import video_tfds


def _source(split="train", **kwargs):
  return moving_sprites.MovingSpritesSource(split, **{"num_examples": 48, **kwargs})


def _foreground(params):
  """bool (T, H, W): pixels where the rendered clip differs from its background."""
  background = (np.clip(params.background, 0, 1) * 255 + 0.5).astype(np.uint8)
  return np.any(moving_sprites.render(params) != background, axis=-1)


def test_shapes_dtypes_and_classes():
  source = _source()
  example = source[0]
  assert set(example) == {schema.RAW_KEYS["video"], "label"}
  assert example["video"].shape == (20, 32, 32, 3) and example["video"].dtype == np.uint8
  assert example["label"].dtype == np.int32
  assert source.num_classes == 12 and source.class_names == moving_sprites.CLASS_NAMES
  assert sorted(int(source[i]["label"]) for i in range(12)) == list(range(12))  # Every class, balanced.
  small = _source(num_frames=5, size=(24, 40), sprite_size=(8, 12), classes=(11, 10, 0, 1))
  assert small[3]["video"].shape == (5, 24, 40, 3)
  assert small.class_names == ("moving left to right", "moving right to left", "covering", "uncovering")
  assert {int(small[i]["label"]) for i in range(8)} == {0, 1, 2, 3}


def test_deterministic_per_seed_split_and_index():
  a, b = _source(), _source()
  for i in (0, 7, 47):
    np.testing.assert_array_equal(a[i]["video"], b[i]["video"])
    np.testing.assert_array_equal(a[i]["video"], a[i]["video"])
  assert not np.array_equal(a[5]["video"], _source(seed=1)[5]["video"])
  assert not np.array_equal(a[5]["video"], _source("valid")[5]["video"])


def test_splits_use_disjoint_sprites():
  splits = {s: _source(s, num_examples=60) for s in moving_sprites.SPLITS}
  indices = [set(source.sprite_indices.tolist()) for source in splits.values()]
  assert not (indices[0] & indices[1] or indices[0] & indices[2] or indices[1] & indices[2])
  assert set.union(*indices) == set(range(sprites.NUM_SHAPES))
  for source, allowed in zip(splits.values(), indices):
    assert {i for index in range(60) for i in source.params(index).sprite_ids} <= allowed
  assert 0.7 < len(indices[0]) / sprites.NUM_SHAPES < 0.9


def test_reversed_clip_is_the_partner_class_clip():
  """The property the labels rest on: a clip reversed in time is exactly a clip of its partner class."""
  source = _source(num_examples=36)
  for index in range(36):
    params = source.params(index)
    partner = source.params(index, moving_sprites.partner(params.class_id))
    assert partner.class_id == moving_sprites.partner(params.class_id)
    np.testing.assert_array_equal(moving_sprites.render(partner), moving_sprites.render(params)[::-1])
    np.testing.assert_array_equal(moving_sprites.reverse(params).poses, partner.poses)
    assert moving_sprites.reverse(params).sprite_ids == partner.sprite_ids


@pytest.mark.parametrize("class_id", [0, 2, 4, 10])
def test_motion_directions(class_id):
  source = _source(num_examples=40, classes=(class_id, class_id + 1))
  for index in range(0, 40, 2):
    foreground = _foreground(source.params(index))
    first, last = np.nonzero(foreground[0]), np.nonzero(foreground[-1])  # (rows, columns) each.
    if class_id == 0:  # Left to right.
      assert last[1].mean() > first[1].mean()
    elif class_id == 2:  # Up.
      assert last[0].mean() < first[0].mean()
    elif class_id == 4:  # Approaching: the sprite grows.
      assert foreground[-1].sum() > foreground[0].sum()
    else:  # Covering: at the end, the top sprite hides most of the bottom one.
      params = source.params(index)
      centre_a, centre_b = params.poses[1, -1, :2], params.poses[0, -1, :2]
      assert np.linalg.norm(centre_a - centre_b) < 0.2 * 16


def test_rotation_is_clockwise_on_screen_and_appearing_starts_empty():
  sprite = np.zeros((11, 11, 4), np.uint8)
  sprite[5, 9] = 255  # A white dot east of the centre.
  poses = np.array([[[16.0, 16.0, 2.0, 0.0, 1.0], [16.0, 16.0, 2.0, math.pi / 2, 1.0]]])
  params = moving_sprites.ClipParams(6, (0,), (sprites.prepare_sprite(sprite, (11, 11)),),
                                     np.zeros((32, 32, 3), np.float32), poses)
  frames = moving_sprites.render(params).max(axis=-1)
  (y0, x0), (y1, x1) = np.unravel_index(frames[0].argmax(), (32, 32)), np.unravel_index(frames[1].argmax(), (32, 32))
  assert x0 > 20 and abs(y0 - 16) <= 1  # East.
  assert y1 > 20 and abs(x1 - 16) <= 1  # Then south: clockwise on screen (y points down).
  source = _source(num_examples=20, classes=(8, 9))
  for index in range(0, 20, 2):
    foreground = _foreground(source.params(index))
    assert not foreground[0].any() and foreground[-1].any()


def test_first_frame_positions_overlap_across_directions():
  """Left-to-right and right-to-left clips start in overlapping ranges of x (frame 0's sprite centre).

  Frame 0's position still favours one class (docs/data/moving_sprites.md):
  knowing which frame is first is itself order.
  """
  source = _source(num_examples=400, classes=(0, 1))
  first_x = np.array([source.params(i).poses[0, 0, 1] for i in range(400)])
  right, left = first_x[0::2], first_x[1::2]  # Classes 0 and 1.
  overlap = (max(right.min(), left.min()), min(right.max(), left.max()))
  assert overlap[1] - overlap[0] > 32 / 5
  assert np.mean((right > overlap[0]) & (right < overlap[1])) > 0.2
  assert np.mean((left > overlap[0]) & (left < overlap[1])) > 0.2


def test_linear_probe_needs_order():
  """The mean frame (order-free) is at chance on left vs right; last-minus-first foreground is not.

  The raw last-minus-first frame is ambiguous: a light sprite moving right
  and a dark one moving left give the same difference image. The foreground
  (distance to the clip's per-pixel median frame) removes the contrast's sign.
  """
  def features(split, n):
    source = _source(split, num_examples=n, size=(16, 16), sprite_size=(8, 8), classes=(0, 1))
    videos = np.stack([source[i]["video"] for i in range(n)]).astype(np.float32) / 255  # (n, T, H, W, 3)
    labels = np.array([source[i]["label"] for i in range(n)])
    foreground = np.abs(videos - np.median(videos, axis=1, keepdims=True)).max(axis=-1)  # (n, T, H, W)
    return videos.mean(axis=1).reshape(n, -1), (foreground[:, -1] - foreground[:, 0]).reshape(n, -1), labels

  train_mean, train_difference, train_labels = features("train", 400)
  test_mean, test_difference, test_labels = features("test", 400)
  probe = lambda x, y, x_test: LogisticRegression(max_iter=2000).fit(x, y).score(x_test, test_labels)
  assert probe(train_mean, train_labels, test_mean) < 0.62  # Chance 0.5; a std of 0.025 on 400 clips.
  assert probe(train_difference, train_labels, test_difference) > 0.9


def test_sprites_without_alpha_are_masked_and_holes_filled():
  image = np.full((20, 20, 3), 255, np.uint8)  # White background,
  image[4:16, 4:16] = (200, 0, 0)  # a red square
  image[8:12, 8:12] = 255  # with a white hole.
  sprite = sprites.prepare_sprite(image, (20, 20))  # (22, 22, 4), padded.
  alpha = sprite[1:-1, 1:-1, 3]
  assert alpha[0, 0] == 0 and alpha[10, 10] == 1 and alpha[5, 5] == 1
  assert sprite[0].max() == 0  # The transparent border.
  grey = sprites.prepare_sprite(np.zeros((28, 14), np.uint8), (16, 16))  # Uniform: all opaque, fitted.
  assert grey.shape == (18, 18, 4) and grey[1:-1, 5:13, 3].min() == 1 and grey[:, 1, 3].max() == 0


def test_real_image_source_without_alpha():
  class Images:
    def __len__(self):
      return 30

    def __getitem__(self, index):
      image = np.full((12, 10, 3), 255, np.uint8)
      image[2:10, 2 + index % 3:8] = (0, 90, 200)
      return {"image": image, "label": np.int32(0)}

  source = _source("test", sprites=Images(), num_examples=12)
  assert source[11]["video"].shape == (20, 32, 32, 3)
  whole = _source("test", sprites=Images(), split_sprites=False)
  assert len(whole.sprite_indices) == 30


@pytest.mark.parametrize("kwargs, name", [
    ({"split": "val"}, "split"),
    ({"num_examples": 0}, "num_examples"),
    ({"num_frames": 2}, "num_frames"),
    ({"size": (32,)}, "size"),
    ({"size": (0, 32)}, "size"),
    ({"sprite_size": "16"}, "sprite_size"),
    ({"seed": -1}, "seed"),
    ({"classes": (0,)}, "classes"),
    ({"classes": (0, 1, 12)}, "classes"),
    ({"classes": (0, 0, 1)}, "classes"),
    ({"split_sprites": 1}, "split_sprites"),
    ({"sprites": []}, "sprites"),
    ({"sprites": [{"image": np.zeros((4, 4, 2), np.uint8)}] * 50}, "sprites"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
  split = kwargs.pop("split", "train")
  with pytest.raises(ValueError, match=f"^{name}"):
    _source(split, **kwargs)


def test_frame_indices_are_uniform():
  np.testing.assert_array_equal(video_tfds.frame_indices(40, 4), [5, 15, 25, 35])
  np.testing.assert_array_equal(video_tfds.frame_indices(3, 6), [0, 0, 1, 1, 2, 2])
  video = np.broadcast_to(np.arange(33, dtype=np.uint8)[:, None, None, None], (33, 8, 8, 3))
  clip = video_tfds.to_clip(video, 20, (4, 6))
  assert clip.shape == (20, 4, 6, 3)
  np.testing.assert_array_equal(clip[:, 0, 0, 0], video_tfds.frame_indices(33, 20))


def test_tfds_video_source_on_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=2):
    source = video_tfds.TFDSVideoSource("train", num_frames=20, size=(32, 32))
    example = source[1]
  assert len(source) == 2 and source.num_classes == 101
  assert example["video"].shape == (20, 32, 32, 3) and example["video"].dtype == np.uint8
  assert example["label"].dtype == np.int32 and 0 <= example["label"] < 101
  with pytest.raises(ValueError, match="^name"):
    video_tfds.TFDSVideoSource("train", name="kinetics")


def test_grain_batches_and_pickle():
  source = _source(num_examples=16)
  copy = pickle.loads(pickle.dumps(source))  # What grain's worker processes get.
  np.testing.assert_array_equal(copy[3]["video"], source[3]["video"])
  batch = next(iter(loader.note_batches(source, batch_size=8, seed=0)))
  assert batch["video"].shape == (8, 20, 32, 32, 3) and batch["label"].shape == (8,)


# Timings: the pose column that moves in each pair, a function of it that moves at a constant rate under
# "linear", and the sign of its change in the pair's first class.
_MOVING = {0: (1, lambda v: v, 1), 2: (0, lambda v: v, -1), 4: (2, np.log, 1), 6: (3, lambda v: v, 1)}


@pytest.mark.parametrize("pair", [0, 2, 4, 6])
def test_decelerating_timing_slows_down_in_the_class_direction(pair):
  column, transform, sign = _MOVING[pair]
  source = _source(num_examples=8, classes=(pair, pair + 1), timing="decelerating")
  t = np.linspace(0, 1, source.num_frames)
  for index in range(8):
    params = source.params(index)
    assert params.class_id == pair + index % 2
    value = transform(params.poses[0, :, column])
    step = np.diff(value) * (sign if params.class_id == pair else -sign)  # Along the class's direction.
    assert np.all(step > 0), (index, step)
    assert np.all(np.diff(step) < 0), (index, step)  # Slower every frame, in both classes of the pair.
    progress = (value - value[0]) / (value[-1] - value[0])
    np.testing.assert_allclose(progress, 1 - (1 - t) ** 2, atol=1e-9)  # The ease-out of `TIMINGS`.
    others = [c for c in range(5) if c != column]  # Nothing else moves.
    np.testing.assert_array_equal(params.poses[0][:, others], params.poses[0][:1, others].repeat(len(t), 0))


@pytest.mark.parametrize("pair", [0, 2, 4, 6])
def test_linear_timing_runs_at_a_constant_rate_between_the_same_end_poses(pair):
  column, transform, _ = _MOVING[pair]
  linear = _source(num_examples=8, classes=(pair, pair + 1), timing="linear")
  decelerating = _source(num_examples=8, classes=(pair, pair + 1), timing="decelerating")
  for index in range(8):
    value = transform(linear.params(index).poses[0, :, column])
    np.testing.assert_allclose(np.diff(value), (value[-1] - value[0]) / (linear.num_frames - 1), atol=1e-9)
    slow = decelerating.params(index).poses
    np.testing.assert_allclose(slow[:, [0, -1]], linear.params(index).poses[:, [0, -1]], atol=1e-12)  # Same draws.
    assert not np.allclose(slow, linear.params(index).poses)
  odd = decelerating.params(1)  # Decelerating: the odd class is not the even clip reversed.
  assert not np.allclose(moving_sprites.reverse(decelerating.params(1, pair)).poses, odd.poses)


def test_linear_timing_is_the_default_clip():
  default, linear = _source(num_examples=24), _source(num_examples=24, timing="linear")
  decelerating = _source(num_examples=24, timing="decelerating")
  assert default.timing == "linear" and {"linear", "decelerating"} <= set(moving_sprites.TIMINGS)
  for index in (0, 1, 5, 10, 23):
    clip = linear[index]
    np.testing.assert_array_equal(clip["video"], default[index]["video"])
    assert clip["label"] == default[index]["label"] == decelerating[index]["label"]
    np.testing.assert_array_equal(linear.params(index).poses, default.params(index).poses)
  assert not np.array_equal(decelerating[0]["video"], default[0]["video"])


@pytest.mark.parametrize("timing", ["ease_out", "", None])
def test_a_bad_timing_names_the_argument(timing):
  with pytest.raises(ValueError, match="^timing"):
    _source(timing=timing)

"""Image sources: an image folder written here, the emoji build on a fake npm tarball, TFDS on mock data."""

import io
import json
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from shuffle_learn.data import emoji
from shuffle_learn.data import emoji_config
from shuffle_learn.data import images

BACKGROUND = (10, 200, 30)


def _save(path, mode, size, seed=0, **kwargs):
  """A random image of ``mode`` and Pillow ``size`` (width, height) at ``path``."""
  rng = np.random.default_rng(seed)
  width, height = size
  if mode == "P":
    image = Image.fromarray(rng.integers(0, 4, (height, width), dtype=np.uint8), "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    kwargs.setdefault("transparency", 3)
  else:
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path, **kwargs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """Two classes (written in reverse order) of 40 images each in every mode and several sizes."""
  root = tmp_path_factory.mktemp("images")
  modes = [("RGBA", (20, 10)), ("RGB", (100, 80)), ("L", (64, 64)), ("P", (7, 9))]
  for name in ("zebra", "apple"):
    for i in range(40):
      mode, size = modes[i % 4]
      _save(str(root / name / f"{name}{i:03d}.png"), mode, size, seed=i)
  _save(str(root / "apple" / "apple_photo.jpg"), "RGB", (50, 70))
  (root / "apple" / "notes.txt").write_text("not an image, ignored")
  (root / "groups.json").write_text("{}")  # Files at the root are not classes.
  return str(root)


def test_folder_gives_the_image_schema_at_the_asked_size_and_channels(folder):
  seen = 0
  for split in images.SPLITS:
    source = images.ImageFolderSource(folder, split, size=(24, 40))
    assert source.class_names == ("apple", "zebra") and source.num_classes == 2
    for i in range(len(source)):
      example = source[i]
      assert example["image"].shape == (24, 40, 3) and example["image"].dtype == np.uint8
      assert example["label"].dtype == np.int32
      assert example["label"] == source.class_names.index(source.files[i].split(os.sep)[0])
    seen += len(source)
  assert seen == 81
  grey = images.ImageFolderSource(folder, "train", channels=1)
  assert grey[0]["image"].shape == (64, 64, 1)
  rgba = images.ImageFolderSource(folder, "train", channels=4)
  assert rgba[0]["image"].shape == (64, 64, 4)
  for i, file in enumerate(rgba.files):
    mode = ("RGBA", "RGB", "L", "P", "RGB")[int(os.path.splitext(file)[0][-3:]) % 4 if file.endswith(".png") else 4]
    assert (rgba[i]["image"][..., 3].min() == 255) == (mode in ("RGB", "L")), file


def test_an_unchanged_size_grey_image_is_read_exactly(folder):
  source = images.ImageFolderSource(folder, images.split_of("apple002"), channels=1)
  index = source.files.index(os.path.join("apple", "apple002.png"))
  expected = np.asarray(Image.open(os.path.join(folder, "apple", "apple002.png")))
  np.testing.assert_array_equal(source[index]["image"][:, :, 0], expected)
  np.testing.assert_array_equal(images.to_array(Image.fromarray(expected), (64, 64), 3),
                                np.repeat(expected[:, :, None], 3, axis=2))


def test_transparent_pixels_become_the_background():
  pixels = np.zeros((8, 8, 4), np.uint8)
  pixels[..., :3] = (255, 0, 255)  # The colour under alpha 0 must not show.
  pixels[:, :4, 3] = 255
  pixels[:, :4, :3] = (0, 0, 250)
  out = images.to_array(Image.fromarray(pixels, "RGBA"), (8, 8), 3, BACKGROUND)
  np.testing.assert_array_equal(out[:, 4:], np.broadcast_to(BACKGROUND, (8, 4, 3)))
  np.testing.assert_array_equal(out[:, :4], np.broadcast_to((0, 0, 250), (8, 4, 3)))
  shrunk = images.to_array(Image.fromarray(pixels, "RGBA"), (4, 4), 3, BACKGROUND)  # BOX: exact halves.
  np.testing.assert_array_equal(shrunk[:, 2:], np.broadcast_to(BACKGROUND, (4, 2, 3)))
  palette = Image.fromarray(np.full((4, 4), 1, np.uint8), "P")
  palette.putpalette([0, 0, 0, 255, 0, 255])
  palette.info["transparency"] = 1
  np.testing.assert_array_equal(images.to_array(palette, (4, 4), 3, BACKGROUND)[0, 0], BACKGROUND)
  rgba = images.to_array(Image.fromarray(pixels, "RGBA"), (8, 8), 4, BACKGROUND)
  np.testing.assert_array_equal(rgba, pixels)  # channels=4 keeps the alpha and composites nothing.
  np.testing.assert_array_equal(images.to_array(palette, (4, 4), 4)[0, 0], (255, 0, 255, 0))
  grey = images.to_array(Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA"), (4, 4), 1, BACKGROUND)
  assert grey.shape == (4, 4, 1) and np.all(grey == round(0.299 * 10 + 0.587 * 200 + 0.114 * 30))


def test_sixteen_bit_grey_is_scaled_not_clipped():
  pixels = np.array([[0, 32896, 65535]], np.uint16)
  np.testing.assert_array_equal(images.to_array(Image.fromarray(pixels), (1, 3), 1)[0, :, 0], [0, 128, 255])


def test_folder_sources_are_deterministic_and_picklable(folder):
  a, b = images.ImageFolderSource(folder, "train"), images.ImageFolderSource(folder, "train")
  assert a.files == b.files
  restored = pickle.loads(pickle.dumps(a))
  for i in (0, len(a) - 1):
    np.testing.assert_array_equal(restored[i]["image"], a[i]["image"])
    assert restored[i]["label"] == a[i]["label"]


def test_folder_batches_through_grain(folder):
  from shuffle_learn.data import loader  # pylint: disable=g-import-not-at-top
  source = images.ImageFolderSource(folder, "train", size=(30, 30))
  batches = list(loader.note_batches(source, batch_size=8, seed=0, num_epochs=1))
  assert len(batches) == len(source) // 8
  assert batches[0]["image"].shape == (8, 30, 30, 3) and batches[0]["image"].dtype == np.uint8
  assert batches[0]["label"].shape == (8,) and batches[0]["label"].dtype == np.int32


def test_a_split_is_a_function_of_the_key_only(tmp_path):
  fractions = np.bincount([images.SPLITS.index(images.split_of(f"key{i}")) for i in range(20000)]) / 20000
  np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.01)
  for i in range(30):
    _save(str(tmp_path / "c" / f"old{i}.png"), "RGB", (4, 4))
  before = {s: set(images.ImageFolderSource(str(tmp_path), s).files) for s in images.SPLITS}
  for i in range(30):
    _save(str(tmp_path / "c" / f"new{i}.png"), "RGB", (4, 4))
  _save(str(tmp_path / "d" / "x.png"), "RGB", (4, 4))
  for split in images.SPLITS:
    after = set(images.ImageFolderSource(str(tmp_path), split).files)
    assert before[split] <= after
    assert all(images.split_of(os.path.splitext(os.path.basename(f))[0]) == split for f in after)


def test_groups_keep_variants_in_one_split(tmp_path):
  groups = {}
  for g in range(40):
    for v in range(3):
      stem = f"emoji{g}-tone{v}"
      _save(str(tmp_path / f"class{g % 2}" / f"{stem}.png"), "RGB", (4, 4))
      groups[stem] = f"emoji{g}"
  (tmp_path / "groups.json").write_text(json.dumps(groups))
  for split_key in (groups, "groups.json", str(tmp_path / "groups.json")):
    split_of_stem = {}
    for split in images.SPLITS:
      for f in images.ImageFolderSource(str(tmp_path), split, split_key=split_key).files:
        split_of_stem[os.path.splitext(os.path.basename(f))[0]] = split
    assert len(split_of_stem) == 120
    assert all(len({split_of_stem[f"emoji{g}-tone{v}"] for v in range(3)}) == 1 for g in range(40))
  by_stem = [len({images.split_of(f"emoji{g}-tone{v}") for v in range(3)}) for g in range(40)]
  assert max(by_stem) > 1  # Without the groups some variants would straddle splits.
  with pytest.raises(ValueError, match=r"no group for 3 file stems.*emoji0-tone"):
    images.ImageFolderSource(str(tmp_path), split_key={k: v for k, v in groups.items() if not k.startswith("emoji0-")})


def test_unreadable_files_are_errors_naming_them(tmp_path):
  for i in range(20):
    _save(str(tmp_path / "ok" / f"ok{i}.png"), "RGB", (4, 4))
  good = io.BytesIO()
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(good, "PNG")
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "readme.png").write_text("a text file named .png")
  (bad / "cut.png").write_bytes(good.getvalue()[:-30])  # Truncated: the IDAT and IEND checks fail.
  splits = {images.split_of(stem) for stem in ("readme", "cut")}
  for split in splits:
    with pytest.raises(ValueError, match="cannot be read") as error:
      images.ImageFolderSource(str(tmp_path), split)
    named = [stem for stem in ("readme", "cut") if images.split_of(stem) == split]
    assert all(os.path.join(str(bad), f"{stem}.png") in str(error.value) for stem in named)


def test_a_jpeg_that_fails_to_decode_is_named_when_read(tmp_path):
  jpeg = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
  path = tmp_path / "c" / "photo.jpg"
  path.parent.mkdir()
  path.write_bytes(jpeg.getvalue()[:len(jpeg.getvalue()) // 2])  # Pillow's JPEG verify reads only the headers.
  source = images.ImageFolderSource(str(tmp_path), images.split_of("photo"))
  with pytest.raises(ValueError, match=f"cannot decode image '{path}'"):
    source[0]


def test_empty_class_folders_splits_and_bad_arguments_are_errors(tmp_path):
  with pytest.raises(ValueError, match="has no class folders"):
    images.ImageFolderSource(str(tmp_path))
  _save(str(tmp_path / "full" / "x.png"), "RGB", (4, 4))
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "notes.txt").write_text("")
  with pytest.raises(ValueError, match=f"class folder '{tmp_path / 'empty'}' has no images"):
    images.ImageFolderSource(str(tmp_path))
  (tmp_path / "empty" / "notes.txt").unlink()
  (tmp_path / "empty").rmdir()
  other = next(s for s in images.SPLITS if s != images.split_of("x"))
  with pytest.raises(ValueError, match=f"the '{other}' split of .* is empty"):
    images.ImageFolderSource(str(tmp_path), other)
  with pytest.raises(ValueError, match="split must be one of"):
    images.ImageFolderSource(str(tmp_path), "validation")
  with pytest.raises(ValueError, match="size must be"):
    images.ImageFolderSource(str(tmp_path), size=(64, 64, 3))
  with pytest.raises(ValueError, match="channels must be one of"):
    images.ImageFolderSource(str(tmp_path), channels=2)
  with pytest.raises(ValueError, match="background must be"):
    images.ImageFolderSource(str(tmp_path), background=(0, 0, 256))
  with pytest.raises(ValueError, match="root .* is not a folder"):
    images.ImageFolderSource(str(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match="split_key: cannot read"):
    images.ImageFolderSource(str(tmp_path), split_key="groups.json")


# ----------------------------------------------------------------------------
# emoji.build on a tarball laid out as the npm package, so nothing is downloaded.

_EMOJI = [
    {"unified": "1F600", "image": "1f600.png", "category": "Smileys & Emotion"},
    {"unified": "1F642", "image": "1f642.png", "category": "Smileys & Emotion"},
    {"unified": "1F385", "image": "1f385.png", "category": "People & Body", "skin_variations": {
        "1F3FB": {"unified": "1F385-1F3FB", "image": "1f385-1f3fb.png"},
        "1F3FF": {"unified": "1F385-1F3FF", "image": "1f385-1f3ff.png"}}},
    {"unified": "1F3C3", "image": "1f3c3.png", "category": "People & Body", "obsoleted_by": "1F3C3-200D-2642-FE0F"},
    {"unified": "1F3C3-200D-2642-FE0F", "image": "1f3c3-200d-2642-fe0f.png", "category": "People & Body"},
    {"unified": "1F1FA-1F1F8", "image": "1f1fa-1f1f8.png", "category": "Flags"},
    {"unified": "1F1FA-1F1F2", "image": "1f1fa-1f1f2.png", "category": "Flags"},  # Drawn as the US flag.
    {"unified": "1F3FB", "image": "1f3fb.png", "category": "Component"},
]


def _fake_package(path, emoji_set="google"):
  index = [{**e, f"has_img_{emoji_set}": True, "skin_variations": {
      k: {**v, f"has_img_{emoji_set}": True} for k, v in e.get("skin_variations", {}).items()}} for e in _EMOJI]
  members = {"package/emoji.json": json.dumps(index).encode(), "package/README.md": b"fake"}
  for i, entry in enumerate(index):
    for j, variant in enumerate([entry, *entry["skin_variations"].values()]):
      png = io.BytesIO()
      colour = 7 if variant["unified"].startswith("1F1FA") else 20 * i + j  # The two flags are identical.
      Image.fromarray(np.full((64, 64, 4), colour, np.uint8), "RGBA").save(png, "PNG")
      members[f"package/img/{emoji_set}/64/{variant['image']}"] = png.getvalue()
  members["../escape.png"] = members[f"package/img/{emoji_set}/64/1f600.png"]
  with tarfile.open(path, "w:gz") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    link = tarfile.TarInfo(f"package/img/{emoji_set}/64/1f4a9.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(link)


def test_emoji_build_writes_the_folder_groups_and_categories(tmp_path, monkeypatch):
  cache = tmp_path / "cache"
  cache.mkdir()
  _fake_package(emoji.tarball_path("google", emoji.VERSION, str(cache)))
  monkeypatch.setattr(emoji.subprocess, "run", lambda *a, **k: pytest.fail("npm must not run"))
  config = emoji_config.get_config()
  config.sets, config.cache_dir, config.min_category_size = ("google",), str(cache), 2
  out = tmp_path / "data" / "emoji"
  summary = emoji.main(config, str(out))
  assert summary["images"] == {"flags": {"google": 2}, "people_and_body": {"google": 5},
                               "smileys_and_emotion": {"google": 2}}
  assert summary["skipped"] == {"Component": 1} and summary["total"] == 9 and summary["missing"] == {"google": []}
  assert sorted(os.listdir(out)) == ["build.json", "flags", "groups.json", "people_and_body", "smileys_and_emotion"]
  assert sorted(os.listdir(out / "people_and_body")) == [
      "google-1f385-1f3fb.png", "google-1f385-1f3ff.png", "google-1f385.png", "google-1f3c3-200d-2642-fe0f.png",
      "google-1f3c3.png"]
  assert not (tmp_path / "escape.png").exists() and not (tmp_path / "data" / "escape.png").exists()
  groups = json.loads((out / "groups.json").read_text())
  assert groups == {
      "google-1f600": "1f600", "google-1f642": "1f642",
      "google-1f385": "1f385", "google-1f385-1f3fb": "1f385", "google-1f385-1f3ff": "1f385",
      "google-1f3c3": "1f3c3", "google-1f3c3-200d-2642-fe0f": "1f3c3",
      "google-1f1fa-1f1f8": "1f1fa-1f1f2", "google-1f1fa-1f1f2": "1f1fa-1f1f2"}
  assert summary["groups"] == 5
  split = images.split_of("1f385")
  source = images.ImageFolderSource(str(out), split, split_key="groups.json")
  assert source.class_names == ("flags", "people_and_body", "smileys_and_emotion")
  assert {os.path.join("people_and_body", f"google-1f385{v}.png") for v in ("", "-1f3fb", "-1f3ff")} <= set(
      source.files)
  np.testing.assert_array_equal(source[0]["image"].shape, (64, 64, 3))
  assert emoji.main(config, str(out)) == summary  # A finished build is reused.
  config.sets = ("google", "twitter")
  with pytest.raises(ValueError, match="is not empty"):
    emoji.main(config, str(out))


def test_emoji_build_rejects_bad_sets_and_a_broken_tarball(tmp_path):
  with pytest.raises(ValueError, match="sets must be"):
    emoji.build(str(tmp_path / "x"), sets=("apple",))
  (tmp_path / emoji.os.path.basename(emoji.tarball_path("google", "1", ""))).write_bytes(b"not gzip")
  with pytest.raises(ValueError, match="cannot read the package tarball"):
    emoji.build(str(tmp_path / "x"), sets=("google",), version="1", cache_dir=str(tmp_path))
  assert not (tmp_path / "x").exists()
  assert emoji.category_folder("Smileys & Emotion") == "smileys_and_emotion"


# ----------------------------------------------------------------------------
# TFDS, on tfds.testing.mock_data (no download).


@pytest.mark.parametrize("name,num_classes", [("imagenet2012", 1000), ("cifar10", 10), ("voc/2012", 20)])
@pytest.mark.parametrize("split", images.SPLITS)
def test_tfds_mock_examples_have_the_image_schema(name, num_classes, split):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=4):
    source = images.TFDSImageSource(name, split, size=(32, 48))
    raw = tfds.data_source(name, split=images.TFDS_SPLITS[name][split])[3]
    assert len(source) == 4
    example = source[3]
  assert source.num_classes == num_classes == len(source.class_names)
  assert example["image"].shape == (32, 48, 3) and example["image"].dtype == np.uint8
  assert example["label"].dtype == np.int32
  if name == "voc/2012":
    objects = np.asarray(raw["objects"]["label"]).reshape(-1)
    assert example["labels"].dtype == np.int32 and example["labels"].shape == (20,)
    assert set(np.flatnonzero(example["labels"])) == set(objects.tolist())
    assert example["label"] == (objects[0] if objects.size else -1)
  else:
    assert set(example) == {"image", "label"} and example["label"] == raw["label"]


def test_tfds_grey_and_bad_arguments():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=4):
    assert images.TFDSImageSource("cifar10", "test", channels=1)[0]["image"].shape == (64, 64, 1)
  with pytest.raises(ValueError, match="name must be one of"):
    images.TFDSImageSource("mnist")
  with pytest.raises(ValueError, match="split must be one of"):
    images.TFDSImageSource("cifar10", "validation")

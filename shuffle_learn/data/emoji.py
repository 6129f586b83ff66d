"""The default image set: emoji from the npm packages ``emoji-datasource-<set>``, as an image folder.

`build` writes, from the packages' 64x64 RGBA PNGs (``package/img/<set>/64/``)
and their index ``package/emoji.json`` (iamcal/emoji-data):

  out_dir/<category>/<set>-<code>.png   one folder per emoji.json category,
                                        e.g. smileys_and_emotion/google-1f600.png
  out_dir/groups.json                   file stem -> group key, for
                                        `images.ImageFolderSource(split_key=...)`
  out_dir/build.json                    what was built: version, sets, counts

Groups keep near-duplicates in one split: an emoji's skin-tone variants
(``skin_variations``) share its base emoji's group, as do an emoji and the one
it is ``obsoleted_by`` (e.g. "person running" and "man running"), and images
of one set with identical pixels (e.g. flags drawn alike); the group key is
the smallest base code among them. The designs of one emoji by different
sets share its group too, since the key is the emoji's code, not the file's.
Categories with fewer than ``min_category_size`` base emoji (Component: the 5
skin-tone swatches) are left out, and ``build.json`` says so.

The tarballs are fetched with ``npm pack`` into the cache folder and reused from
there; members are read by name (never extracted to a path the archive
chooses). Licences: Google's images Apache-2.0 (Noto Emoji), Twitter's CC-BY-4.0
(Twemoji: credit "Twemoji by Twitter, Inc and other contributors"); the
packages' code MIT. Command: see `shuffle_learn/data/emoji_config.py`;
measurements in docs/data/images.md.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from typing import Sequence

import numpy as np
from PIL import Image

from shuffle_learn import _checks

SETS = ("google", "twitter")  # Apple's and Facebook's images are not openly licensed.
VERSION = "16.0.0"
_MAX_MEMBER_BYTES = 64 << 20  # emoji.json is ~1.6 MB, a PNG a few KB.


def default_cache_dir() -> str:
  """$SHUFFLE_LEARN_CACHE/emoji, by default ~/.cache/shuffle_learn/emoji."""
  root = os.environ.get("SHUFFLE_LEARN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "shuffle_learn")
  return os.path.join(root, "emoji")


def default_root(sets: Sequence[str] = SETS, version: str = VERSION) -> str:
  """Where a config that names no folder keeps the built image folder: beside the tarballs."""
  return os.path.join(default_cache_dir(), f"images-{version}-{'-'.join(sets)}")


def package_name(emoji_set: str) -> str:
  return f"emoji-datasource-{emoji_set}"


def tarball_path(emoji_set: str, version: str, cache_dir: str) -> str:
  """Where ``npm pack`` leaves the package's tarball (and where `tarballs` looks for it first)."""
  return os.path.join(cache_dir, f"{package_name(emoji_set)}-{version}.tgz")


def tarballs(sets: Sequence[str], version: str, cache_dir: str) -> dict[str, str]:
  """set -> its package tarball in ``cache_dir``, fetched with one ``npm pack`` for those not there yet."""
  paths = {s: tarball_path(s, version, cache_dir) for s in sets}
  missing = [s for s in sets if not os.path.isfile(paths[s])]
  if missing:
    npm = shutil.which("npm")
    if npm is None:
      raise RuntimeError(f"npm is not installed: install Node.js, or put {[paths[s] for s in missing]} there "
                         f"(`npm pack {package_name(missing[0])}@{version}` on another machine).")
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:  # A killed download leaves no partial tarball.
      command = [npm, "pack", *(f"{package_name(s)}@{version}" for s in missing)]
      result = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
      if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command[1:])}` failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
      for s in missing:
        os.replace(os.path.join(tmp, os.path.basename(paths[s])), paths[s])
  return paths


def read_package(path: str, emoji_set: str) -> tuple[list[dict], dict[str, bytes]]:
  """``emoji.json`` and the 64x64 PNGs of ``emoji_set`` (image file name -> bytes) of one package tarball."""
  pattern = re.compile(rf"package/img/{re.escape(emoji_set)}/64/([0-9a-f]+(?:-[0-9a-f]+)*\.png)")
  index, pngs = None, {}
  try:
    with tarfile.open(path, "r:gz") as tar:
      for member in tar:
        match = pattern.fullmatch(member.name)
        if not (member.isfile() and (match or member.name == "package/emoji.json")):
          continue  # Links, folders and other files are never read.
        if member.size > _MAX_MEMBER_BYTES:
          raise ValueError(f"{member.name} is {member.size} bytes")
        data = tar.extractfile(member).read()
        if match:
          pngs[match.group(1)] = data
        else:
          index = json.loads(data)
  except (OSError, EOFError, tarfile.TarError, ValueError) as e:
    raise ValueError(f"cannot read the package tarball {path!r} ({type(e).__name__}: {e}).") from None
  if not isinstance(index, list) or not pngs:
    raise ValueError(f"the package tarball {path!r} lacks package/emoji.json or package/img/{emoji_set}/64/*.png.")
  return index, pngs


def category_folder(category: str) -> str:
  """A category as a folder name: "Smileys & Emotion" -> "smileys_and_emotion"."""
  return re.sub(r"[^a-z0-9]+", "_", category.lower().replace("&", " and ")).strip("_")


class _Groups:
  """Union-find over base codes; a group is named by its smallest code."""

  def __init__(self):
    self.parent = {}

  def find(self, code: str) -> str:
    self.parent.setdefault(code, code)
    while self.parent[code] != code:
      self.parent[code] = self.parent[self.parent[code]]
      code = self.parent[code]
    return code

  def join(self, a: str, b: str) -> None:
    a, b = self.find(a), self.find(b)
    if a != b:
      self.parent[max(a, b)] = min(a, b)


def _emoji_images(index: list[dict], emoji_set: str):
  """(image file name, base emoji's code, category, base code of the emoji it is obsoleted_by or None) per image."""
  variants = lambda entry: [entry, *entry.get("skin_variations", {}).values()]
  base_of = {v["unified"].lower(): e["unified"].lower() for e in index for v in variants(e)}
  for entry in index:
    for variant in variants(entry):
      if variant.get(f"has_img_{emoji_set}"):
        obsoleted_by = base_of.get((variant.get("obsoleted_by") or "").lower())
        yield variant["image"], entry["unified"].lower(), entry["category"], obsoleted_by


def build(out_dir: str, *, sets: Sequence[str] = SETS, version: str = VERSION, cache_dir: str | None = None,
          min_category_size: int = 50) -> dict:
  """Writes the emoji image folder, groups.json and build.json; returns the summary that build.json holds.

  Args:
    out_dir: a folder that does not exist or is empty, or a finished build
      with the same ``sets`` and ``version`` (then reused as it is).
    sets: designs, among `SETS`.
    version: of the npm packages.
    cache_dir: for the tarballs; `default_cache_dir` if None.
    min_category_size: categories with fewer base emoji are left out.

  Returns:
    The summary: ``images`` (category -> set -> count), ``total``,
    ``groups``, ``skipped`` (category -> base emoji left out), ``missing``
    (set -> images emoji.json lists but the tarball lacks), ``tarball_bytes``,
    ``seconds``.
  """
  sets = tuple(sets)
  if not sets or len(set(sets)) != len(sets) or not set(sets) <= set(SETS):
    raise ValueError(f"sets must be distinct designs among {SETS}, got {sets!r}.")
  _checks.check_string("version", version)
  _checks.check_int("min_category_size", min_category_size, 0)
  out_dir = os.path.abspath(out_dir)
  manifest = os.path.join(out_dir, "build.json")
  if os.path.isfile(manifest):
    with open(manifest, encoding="utf-8") as f:
      summary = json.load(f)
    if tuple(summary.get("sets", ())) == sets and summary.get("version") == version:
      return summary
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ValueError(f"out_dir {out_dir!r} is not empty and is not a build of sets={sets}, version={version!r}.")
  start = time.perf_counter()
  cache_dir = cache_dir or default_cache_dir()
  paths = tarballs(sets, version, cache_dir)
  packages = {s: read_package(paths[s], s) for s in sets}
  index = packages[sets[0]][0]

  base_counts = {}
  for entry in index:
    base_counts[entry["category"]] = base_counts.get(entry["category"], 0) + 1
  skipped = {c: n for c, n in sorted(base_counts.items()) if n < min_category_size}
  groups = _Groups()
  files, missing = [], {s: [] for s in sets}  # files: (set, image name, base, category folder).
  for s in sets:
    pngs, seen = packages[s][1], {}
    for image, base, category, obsoleted_by in _emoji_images(index, s):
      if category in skipped:
        continue
      if image not in pngs:
        missing[s].append(image)
        continue
      groups.find(base)  # Every base emoji is a group, joined or not.
      if obsoleted_by:
        groups.join(base, obsoleted_by)
      try:
        pixels = np.asarray(Image.open(io.BytesIO(pngs[image])).convert("RGBA")).tobytes()
      except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{paths[s]}: package/img/{s}/64/{image} is not a readable PNG ({e}).") from None
      if pixels in seen:
        groups.join(base, seen[pixels])
      seen.setdefault(pixels, base)
      files.append((s, image, base, category_folder(category)))

  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".emoji-", dir=parent)  # Moved into place when complete.
  try:
    group_of, images = {}, {}
    for s, image, base, folder in files:
      stem = f"{s}-{os.path.splitext(image)[0]}"
      os.makedirs(os.path.join(tmp, folder), exist_ok=True)
      with open(os.path.join(tmp, folder, stem + ".png"), "wb") as f:
        f.write(packages[s][1][image])
      group_of[stem] = groups.find(base)
      images.setdefault(folder, {}).setdefault(s, 0)
      images[folder][s] += 1
    summary = {
        "version": version, "sets": list(sets), "images": dict(sorted(images.items())), "total": len(files),
        "groups": len(set(group_of.values())), "skipped": skipped, "missing": missing,
        "tarball_bytes": {s: os.path.getsize(paths[s]) for s in sets},
        "seconds": round(time.perf_counter() - start, 1)}
    with open(os.path.join(tmp, "groups.json"), "w", encoding="utf-8") as f:
      json.dump(group_of, f, indent=0, sort_keys=True)
    with open(os.path.join(tmp, "build.json"), "w", encoding="utf-8") as f:
      json.dump(summary, f, indent=2)
    if os.path.isdir(out_dir):
      os.rmdir(out_dir)  # Empty, checked above.
    os.replace(tmp, out_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return summary


def main(config, workdir: str) -> dict:
  """`build` into ``workdir`` with the fields of `shuffle_learn/data/emoji_config.py`."""
  return build(workdir, sets=tuple(config.sets), version=config.version, cache_dir=config.cache_dir or None,
               min_category_size=config.min_category_size)


if __name__ == "__main__":
  from shuffle_learn import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, config=os.path.join(os.path.dirname(os.path.abspath(__file__)), "emoji_config.py"),
          print_result=True, workdir_help="Output image folder (<category>/<set>-<code>.png, groups.json).")

"""Building the default image set: emoji of Google's Noto and Twitter's Twemoji designs in 9 category folders.

Command:
  python -m shuffle_learn.data.emoji --workdir DATA/emoji
  [--config.sets="('google',)"]   one design only (3,781 images)

Downloads (once, into $SHUFFLE_LEARN_CACHE/emoji or ~/.cache/shuffle_learn/emoji)
the npm packages emoji-datasource-google and emoji-datasource-twitter (74 MB
and 62 MB) with ``npm pack`` and writes ``DIR/<category>/<set>-<code>.png``
(7,562 RGBA PNGs of 64x64), ``DIR/groups.json`` and ``DIR/build.json``; prints
the counts. Expected runtime on the 2-core CPU: about 5 s with the download,
2 s from the cached tarballs, instant when DIR already holds this build.
Measurements and the choice of this set: docs/data/images.md.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.sets = ("google", "twitter")     # Designs, among shuffle_learn.data.emoji.SETS.
  config.version = "16.0.0"               # Of the npm packages emoji-datasource-<set>.
  config.cache_dir = ""                   # Tarballs; "" for $SHUFFLE_LEARN_CACHE/emoji or ~/.cache/shuffle_learn/emoji.
  config.min_category_size = 50           # Categories with fewer base emoji are left out (Component: 5).
  return config

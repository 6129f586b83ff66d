"""gm_notes benchmark: General-MIDI notes rendered on demand against notes materialised to disk.

Command:
  python -m benchmarks.gm_notes --workdir results/gm_notes_benchmark
  [--config.num=2000] [--config.materialise=2000] [--config.workers=2] [--config.batch=32]
  [--config.cold_index=True] [--config.soundfonts=TimGM6mb,FluidR3_GM]

Measures the index (each SoundFont's one-off silence check and the time to
construct from the cache), notes/s on demand (`GMNotesSource.__getitem__`, and
`loader.note_batches` with 1 and 4 read threads and with ``workers`` worker
processes), and notes written to a float32 .npy memmap and read back at random
warm and cold; writes ``gm_notes.json``. The measurements and the decision they
led to (render on demand) are in docs/data/gm_notes.md.

Expected runtime on the 2-core CPU: about 20 s with the index cached (add
11-16 s per SoundFont with ``cold_index``); estimated from the rates in
docs/data/gm_notes.md, not recorded.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.soundfonts = ""                   # Comma-separated .sf2/.sf3 paths or names; "" for the GM ones installed.
  config.num = 2000                        # Notes rendered on demand.
  config.materialise = 2000                # Notes written to disk and read back; 0 skips it.
  config.workers = 2                       # Loader worker processes to try; -1 skips them.
  config.batch = 32                        # Loader batch size.
  config.cold_index = False                # Rebuild the index in a fresh cache to time it.
  config.tmp_dir = ""                      # Where the materialised file is written; "" for the system's temp.
  return config

"""Data-pipeline benchmark: the host's note batches against the device front end, in one run.

Command:
  python -m benchmarks.data_pipeline --workdir results/data_pipeline_benchmark
  [--config.batches=20] [--config.batch=32] [--config.soundfonts=TimGM6mb,FluidR3_GM]

Measures examples/s of `GMNotesSource` rendering whole notes on demand through
`loader.note_batches` (1 and 2 read threads), and of the jitted front end with
on-device permutations (log spectrogram in 10 bands, log-mel in 8 bands);
prints each rate's ratio to the best host rate and writes
``data_pipeline.{json,md}``. Measured 2026-11-22 on the 2-core CPU: 813 and
1,285 notes/s on the host, 381 and 478 examples/s on the device
(docs/results/README.md).

Expected runtime on the 2-core CPU: about 15 s once the SoundFonts' index is
cached (the first construction checks every note: 11-16 s per SoundFont).
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.batches = 20                      # Timed batches per stage (and device repetitions).
  config.batch = 32                        # Notes per batch.
  config.soundfonts = ""                   # Comma-separated .sf2 paths or names; "" for gm_notes' default.
  return config

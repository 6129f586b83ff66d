"""Front-end benchmark: the jitted spectrograms, patch slicing and pretext input, one by one.

Command:
  python -m benchmarks.frontend --workdir results/frontend_benchmark
  [--config.reps=5]   quick: 5 interleaved runs instead of 30

Measures, on batches of 32 clips of 4 s at 16 kHz, the median and minimum ms
per batch and examples/s of the two framings of `stft_magnitude`,
`stft_magnitude`, `log_spectrogram`, `log_mel_spectrogram`, the log-mel cut
into bands, segments and tiles (`to_patches`), and the whole pretext input
(tiles, permutations, shuffle, targets); writes ``frontend.{json,md}``.

Expected runtime on the 2-core CPU: about 30 s with 30 runs (one round of the
nine cases takes about 0.75 s), 10 s with 5.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.reps = 30                         # Interleaved timed runs per case; 5 for a quick look.
  return config

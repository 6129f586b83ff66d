"""Audio data: SoundFont notes and NSynth in one schema, front ends, patches, permutations.

Modules (imported on use: `nsynth` needs the `tfds` extra, `gm_notes` needs
`tinysoundfont`):
  gm_notes      NSynth-style notes rendered from General-MIDI SoundFonts.
  nsynth        NSynth through TFDS; the common note schema.
  loader        grain batches with shuffling, per-host sharding and exact resume.
  frontend      log spectrogram and log-mel spectrogram in JAX.
  patches       frequency bands, time frames and time-frequency tiles.
  permutations  on-device permutations, rank targets, Hamming-maximal sets.
"""

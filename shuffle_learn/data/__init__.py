"""Data: sources of examples in one schema per modality, front ends, patches, permutations.

Modules (imported on use: `nsynth` needs the `tfds` extra; `gm_notes`,
`soundfonts` and `gm_index` need `tinysoundfont`):
  schema        what an example is, per modality: SAMPLE_RATE, NUM_SAMPLES, FAMILIES, NoteSource.
  sources       sources by config name, training and validation batches.
  gm_notes      GMNotesSource: NSynth-style notes rendered from General-MIDI SoundFonts.
  gm_programs   General-MIDI programs -> NSynth families, pitch ranges, velocities.
  soundfonts    finding, loading and rendering SoundFont notes.
  gm_index      the notes' selection, silence scan and its cache, and splits.
  nsynth        NSynth through TFDS.
  images        ImageFolderSource (root/<class>/<file>.png) and TFDSImageSource (imagenet2012, cifar10, voc/2012).
  emoji         the default image set: npm's emoji-datasource-google and -twitter as an image folder.
  moving_sprites  synthetic clips whose label is the direction of a motion (sprites from `sprites`).
  sprites       sprite images cut out and fitted, and procedural shapes.
  video_tfds    TFDSVideoSource (ucf101).
  tfds_source   the base of the TFDS sources.
  loader        grain batches with shuffling, per-host sharding and exact resume.
  frontend      log spectrogram and log-mel spectrogram in JAX.
  patches       frequency bands, time frames, tiles and video frames as patches.
  permutations  on-device permutations, rank targets, Hamming-maximal sets.
"""

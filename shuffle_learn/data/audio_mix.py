"""General-purpose audio for pre-training: the examples of several audio sources, mixed, without labels.

`AudioMixSource` pre-trains an audio encoder on more than one kind of sound
(notes, speech, sound events) instead of on the notes of one task: it holds
the examples of several random-access audio sources (by default the train
splits of `gm_notes`, `spoken_words` and `sound_events`) and gives only their
audio, cut or padded to one length, and the index of the source each came
from. Their labels are dropped: pre-training reads no label, and every pretext
objective is trained on the same clips, so that objectives are compared on the
same data. ``source`` is there to count or weight the kinds of sound (and for
tests), not as a downstream task. Examples are flat dicts:

  audio   float32 (num_samples,)  the sub-source's audio at 16 kHz, cut to its
                                  first num_samples samples, or zero-padded at
                                  the end to num_samples
  source  int32                   the sub-source: an index into `names`

Selection: from sub-source ``j`` (``n_j`` examples) the mix keeps ``k_j =
min(per_source, n_j)`` examples, all of them (``k_j = n_j``) when
``per_source`` is None or 0: the first ``k_j`` indices of
``np.random.default_rng([seed, j]).permutation(n_j)``, in that order. So what
is kept of a sub-source depends only on its length, its position ``j``, the
seed and the cap, never on the other sub-sources; a smaller cap keeps a prefix
of what a larger one keeps; and with no cap every example is kept (in a
seeded order). The mix is the concatenation of the kept examples, sub-source
0's first: mix index ``i`` is sub-source ``j``'s ``i - sum(counts[:j])``-th
kept example.

Example:
  >>> mix = AudioMixSource([notes, words], names=("gm_notes", "spoken_words"), num_samples=16000,
  ...                      per_source=1000)
  >>> mix.counts, len(mix)
  ((1000, 1000), 2000)
  >>> example = mix[1500]
  >>> example["audio"].shape, mix.names[example["source"]]
  ((16000,), 'spoken_words')

`shuffle_learn.data.sources` builds it as source ``"audio_mix"`` from
``config.data.mix`` (the sub-sources' names), ``config.data.mix_examples``
(the per-source cap of each split) and ``config.features.seconds``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from shuffle_learn import _checks
from shuffle_learn.data import schema


def _check_sources(sources) -> tuple:
  if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence) or not sources:
    raise ValueError(f"sources must be a non-empty sequence of random-access audio sources, got {sources!r}.")
  for j, source in enumerate(sources):
    if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
      raise ValueError(f"sources[{j}] must be a random-access source (__len__ and __getitem__), got {source!r}.")
  return tuple(sources)


def _check_names(names, num_sources: int) -> tuple[str, ...]:
  if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or not all(
      isinstance(n, str) and n for n in names):
    raise ValueError(f"names must be a sequence of non-empty strings, got {names!r}.")
  if len(names) != num_sources:
    raise ValueError(f"names must name each of the {num_sources} sources, got {len(names)}: {names!r}.")
  if len(set(names)) != len(names):
    raise ValueError(f"names has repeated entries: {names!r}.")
  return tuple(names)


class AudioMixSource:
  """The kept examples of several audio sources, concatenated: ``{"audio", "source"}`` dicts.

  A grain ``RandomAccessDataSource``: `__len__` and `__getitem__`,
  deterministic (an index always gives the same example, if the sub-sources
  are deterministic) and picklable (if the sub-sources are). The selection
  and crop rules are the module's.

  Attributes:
    names: the sub-sources' names; ``source`` of an example indexes them.
    num_samples: the length of every example's audio.
    counts: examples kept of each sub-source, in the order of `names`.
    per_source: the cap per sub-source, None for none.
    seed: the selection seed.
    sample_rate: `schema.SAMPLE_RATE`.
  """

  def __init__(self, sources: Sequence, *, names: Sequence[str], num_samples: int, per_source: int | None = None,
               seed: int = 0):
    """Checks the arguments and selects the examples kept of each sub-source.

    Args:
      sources: random-access sources whose examples hold ``"audio"``, a
        float32 1-D array at 16 kHz (`gm_notes.GMNotesSource`,
        `spoken_words.SpokenWordsSource`, `sound_events.SoundEventsSource`).
      names: one distinct name per source ("gm_notes").
      num_samples: the audio length of every example, >= 1.
      per_source: keep at most this many examples of each source (a seeded
        choice, see the module docstring); None or 0 keeps all.
      seed: the selection seed, >= 0.

    Raises:
      ValueError: a bad argument (the message starts with its name), or a
        sub-source without examples.
    """
    self._sources = _check_sources(sources)
    self.names = _check_names(names, len(self._sources))
    self.num_samples = _checks.check_int("num_samples", num_samples, 1)
    if per_source is not None:
      per_source = _checks.check_int("per_source", per_source, 0) or None
    self.per_source = per_source
    self.seed = _checks.check_int("seed", seed, 0)
    self.sample_rate = schema.SAMPLE_RATE
    rows = []
    for j, source in enumerate(self._sources):
      n = len(source)
      if n < 1:
        raise ValueError(f"sources[{j}] ({self.names[j]!r}) has no examples.")
      rows.append(selection(n, j, per_source, self.seed))
    self.counts = tuple(len(r) for r in rows)
    self._starts = np.cumsum((0,) + self.counts[:-1]).astype(np.int64)  # Mix index of each sub-source's first.
    self._rows = np.concatenate(rows).astype(np.int64)  # Sub-source index of each mix index.

  def __len__(self) -> int:
    return len(self._rows)

  def _check_index(self, index) -> int:
    if not _checks.is_int(index):
      raise TypeError(f"index must be an integer, got {index!r}.")
    n = len(self)
    if not -n <= index < n:
      raise IndexError(f"index {index} is out of range for a mix of {n} examples.")
    return int(index) % n

  def origin(self, index: int) -> tuple[int, int]:
    """(j, k): mix example ``index`` is example ``k`` of sub-source ``j`` (``names[j]``)."""
    i = self._check_index(index)
    j = int(np.searchsorted(self._starts, i, side="right")) - 1
    return j, int(self._rows[i])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    j, k = self.origin(index)
    audio = np.asarray(self._sources[j][k]["audio"], np.float32)
    if audio.ndim != 1:
      raise ValueError(f"sources[{j}] ({self.names[j]!r}) example {k} has audio of shape {audio.shape}, not 1-D.")
    clip = np.zeros(self.num_samples, np.float32)
    length = min(len(audio), self.num_samples)
    clip[:length] = audio[:length]
    return {"audio": clip, "source": np.int32(j)}

  def __repr__(self) -> str:
    return (f"AudioMixSource(names={self.names!r}, counts={self.counts!r}, num_samples={self.num_samples}, "
            f"per_source={self.per_source!r}, seed={self.seed})")


def selection(num_examples: int, position: int, per_source: int | None, seed: int) -> np.ndarray:
  """The indices `AudioMixSource` keeps of the sub-source at ``position`` with ``num_examples`` examples, in order.

  The first ``min(per_source, num_examples)`` (all for None or 0) of
  ``np.random.default_rng([seed, position]).permutation(num_examples)``.
  """
  order = np.random.default_rng([seed, position]).permutation(num_examples)
  return order[:per_source] if per_source else order

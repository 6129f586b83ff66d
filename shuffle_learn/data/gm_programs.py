"""General-MIDI programs as NSynth instruments: families, pitch ranges, velocities.

NSynth (Engel et al. 2017) labels every note with one of eleven instrument
families (`schema.FAMILIES`) and plays it at five velocities. This module maps
the melodic General-MIDI programs (bank 0) onto those families and gives each
family the range of MIDI pitches a note source tries; programs that fit no
family (timpani, orchestra hit, pads, sound effects, drones, percussion) are
left out of every selection.

References:
  Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
  Autoencoders", ICML 2017 (the NSynth dataset).
"""

from __future__ import annotations

# NSynth's velocities.
VELOCITIES = (25, 50, 75, 100, 127)

# General-MIDI program (0-based, bank 0) -> NSynth family. Programs missing here
# are left out (EXCLUDED_PROGRAMS).
GM_PROGRAM_FAMILY: dict[int, str] = {
    # 0-7 Piano: acoustic, bright, electric grand, honky-tonk, electric pianos 1
    # and 2, harpsichord, clavinet.
    **dict.fromkeys(range(0, 8), "keyboard"),
    # 8-15 Chromatic percussion: celesta, glockenspiel, music box, vibraphone,
    # marimba, xylophone, tubular bells, dulcimer.
    **dict.fromkeys(range(8, 16), "mallet"),
    # 16-20 Organ: drawbar, percussive, rock, church, reed organ.
    **dict.fromkeys(range(16, 21), "organ"),
    # 21-23 Accordion, harmonica, tango accordion: free reeds.
    **dict.fromkeys(range(21, 24), "reed"),
    # 24-31 Guitar: nylon, steel, jazz, clean, muted, overdriven, distortion,
    # harmonics.
    **dict.fromkeys(range(24, 32), "guitar"),
    # 32-39 Bass: acoustic, finger, pick, fretless, slap 1 and 2, synth bass 1
    # and 2 (NSynth's bass family includes synthetic basses).
    **dict.fromkeys(range(32, 40), "bass"),
    # 40-46 Strings: violin, viola, cello, contrabass, tremolo strings,
    # pizzicato strings, orchestral harp. (47 timpani is a drum: left out.)
    **dict.fromkeys(range(40, 47), "string"),
    # 48-51 Ensemble: string ensembles 1 and 2, synth strings 1 and 2.
    **dict.fromkeys(range(48, 52), "string"),
    # 52-54 Choir aahs, voice oohs, synth voice. (55 orchestra hit: left out.)
    **dict.fromkeys(range(52, 55), "vocal"),
    # 56-63 Brass: trumpet, trombone, tuba, muted trumpet, French horn, brass
    # section, synth brass 1 and 2.
    **dict.fromkeys(range(56, 64), "brass"),
    # 64-71 Reed: soprano, alto, tenor, baritone sax, oboe, English horn,
    # bassoon, clarinet.
    **dict.fromkeys(range(64, 72), "reed"),
    # 72-79 Pipe: piccolo, flute, recorder, pan flute, blown bottle,
    # shakuhachi, whistle, ocarina.
    **dict.fromkeys(range(72, 80), "flute"),
    # 80-85, 87 Synth lead: square, sawtooth, calliope, chiff, charang, voice,
    # bass + lead. (86 "fifths" sounds two pitches: left out.)
    **dict.fromkeys((80, 81, 82, 83, 84, 85, 87), "synth_lead"),
    # 88-95 synth pads (slow, layered textures with no NSynth family), 96-103
    # synth effects: left out.
    # 104-111 Ethnic: 105 banjo (plucked, fretted), 110 fiddle (a violin),
    # 111 shanai (a double reed). Sitar (drone strings), shamisen, koto,
    # kalimba and bagpipe (drones) fit no family: left out.
    105: "guitar",
    110: "string",
    111: "reed",
    # 112-119 percussive (tinkle bell, agogo, steel drums, woodblock, taiko,
    # melodic tom, synth drum, reverse cymbal) and 120-127 sound effects: left
    # out.
}

# General-MIDI programs with no NSynth family, left out of every selection.
EXCLUDED_PROGRAMS: tuple[int, ...] = tuple(p for p in range(128) if p not in GM_PROGRAM_FAMILY)

# Per family, the MIDI pitches tried (inclusive), about the sounding range of its
# instruments. NSynth spans 21-108 overall; the silence check of `gm_index` then
# drops keys a preset has no samples for.
FAMILY_PITCHES: dict[str, tuple[int, int]] = {
    "bass": (28, 60),  # E1-C4: bass guitars, double bass, synth bass.
    "brass": (40, 84),  # E2-C6: tuba and trombone low, trumpet high.
    "flute": (60, 96),  # C4-C7: flute, recorder, pan flute; piccolo's low half.
    "guitar": (40, 88),  # E2-E6: six strings, 24 frets.
    "keyboard": (21, 108),  # A0-C8: the 88-key piano.
    "mallet": (48, 96),  # C3-C7: marimba, vibraphone, celesta, bells.
    "organ": (36, 96),  # C2-C7: manuals.
    "reed": (36, 84),  # C2-C6: bassoon and baritone sax to soprano sax and oboe.
    "string": (28, 96),  # E1-C7: contrabass to violin.
    "synth_lead": (36, 96),  # C2-C7.
    "vocal": (48, 84),  # C3-C6: choir, bass to soprano.
}

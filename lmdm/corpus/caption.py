"""Captions: a sentence per example from its attributes, with varied wording.

The wording is drawn from the example's seed, so a caption is reproducible. Every caption
names the style (one of ``STYLE_WORDS[style]``) and the tempo as a whole number of BPM; the
mood, key and up to three instruments appear in most of them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import attrs
import numpy as np

STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "techno": ("techno", "warehouse techno", "minimal techno", "peak-time techno"),
    "house": ("house", "deep house", "classic house", "chicago house"),
    "ambient": ("ambient", "ambient electronic", "drone ambient", "new age ambient"),
    "lofi_hip_hop": ("lo-fi hip hop", "lofi", "lo-fi hip-hop", "chillhop"),
    "pop": ("pop", "pop rock", "indie pop", "upbeat pop"),
    "bossa_nova": ("bossa nova", "bossa", "jazzy bossa nova", "latin jazz"),
    "drum_and_bass": ("drum and bass", "drum & bass", "dnb", "liquid drum and bass"),
    "trap": ("trap", "dark trap", "hip hop trap", "trap-style hip hop"),
    "synthwave": ("synthwave", "retrowave", "80s synthwave", "outrun"),
}

INSTRUMENT_WORDS: dict[str, tuple[str, ...]] = {
    "acid_bass": ("acid bass", "squelchy acid bassline", "303-style bass"),
    "sub_bass": ("sub bass", "deep sub bass", "round sine bass"),
    "808_bass": ("808 bass", "booming 808s", "sliding 808"),
    "reese_bass": ("reese bass", "growling reese bass", "detuned reese"),
    "fm_bass": ("fm bass", "punchy synth bass", "plucky fm bass"),
    "synth_bass": ("synth bass", "analog bass", "buzzy bassline"),
    "upright_bass": ("upright bass", "plucked double bass", "acoustic bass"),
    "electric_piano": ("electric piano", "rhodes-style keys", "warm e-piano"),
    "piano": ("piano", "warm piano chords", "soft piano"),
    "organ": ("organ", "drawbar organ", "vintage organ"),
    "supersaw_pad": ("supersaw pad", "lush synth pad", "wide detuned pad"),
    "warm_pad": ("warm pad", "soft analog pad", "mellow pad"),
    "strings": ("strings", "string ensemble", "lush strings"),
    "chord_stab": ("chord stabs", "synth stabs", "short chord hits"),
    "synth_pluck": ("synth pluck", "plucked synth", "bright plucks"),
    "nylon_guitar": ("nylon guitar", "classical guitar", "gentle acoustic guitar"),
    "clean_guitar": ("clean guitar", "strummed guitar", "jangly guitar"),
    "fm_bell": ("fm bells", "glassy bells", "bell melody"),
    "mallet": ("marimba", "mallets", "wooden mallet synth"),
    "saw_lead": ("saw lead", "soaring synth lead", "detuned lead synth"),
    "square_lead": ("square lead", "chiptune-ish square lead", "hollow square synth"),
    "soft_lead": ("flute-like lead", "breathy flute", "soft whistle lead"),
    "909_drums": ("909 drums", "punchy drum machine", "crisp hats and kick"),
    "808_drums": ("808 drums", "drum machine", "analog drum machine"),
    "acoustic_drums": ("live drums", "acoustic drum kit", "band drums"),
    "break_drums": ("breakbeats", "chopped breaks", "fast breakbeat"),
    "trap_drums": ("trap drums", "rolling hi-hats", "snappy claps and hats"),
    "brush_drums": ("brushed drums", "soft percussion", "rim clicks and shaker"),
    "lofi_drums": ("dusty drums", "boom bap drums", "lo-fi drum loop"),
}

MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "dark": ("dark", "brooding", "shadowy"),
    "hypnotic": ("hypnotic", "trance-inducing", "repetitive, hypnotic"),
    "driving": ("driving", "propulsive", "pounding"),
    "tense": ("tense", "uneasy", "suspenseful"),
    "uplifting": ("uplifting", "euphoric", "feel-good"),
    "groovy": ("groovy", "funky", "bouncy"),
    "warm": ("warm", "cozy", "sunny"),
    "soulful": ("soulful", "heartfelt", "smooth"),
    "calm": ("calm", "serene", "still"),
    "dreamy": ("dreamy", "floating", "hazy"),
    "melancholic": ("melancholic", "sad", "wistful"),
    "peaceful": ("peaceful", "gentle", "tranquil"),
    "chill": ("chill", "laid-back", "easygoing"),
    "nostalgic": ("nostalgic", "retro", "bittersweet"),
    "mellow": ("mellow", "soft", "relaxed-sounding"),
    "happy": ("happy", "cheerful", "joyful"),
    "energetic": ("energetic", "high-energy", "lively"),
    "bright": ("bright", "shiny", "sparkling"),
    "relaxed": ("relaxed", "unhurried", "lazy"),
    "romantic": ("romantic", "tender", "intimate"),
    "aggressive": ("aggressive", "hard-hitting", "menacing"),
    "moody": ("moody", "atmospheric and dark", "nocturnal"),
    "atmospheric": ("atmospheric", "spacious", "cinematic"),
}

TEMPLATES: tuple[str, ...] = (
    "{mood} {style} with {instruments} at {tempo}",
    "{style}, {tempo}, {instruments}, {key}",
    "a {mood} {style} track in {key}, {tempo}, featuring {instruments}",
    "{tempo} {style}: {instruments}; {mood} mood",
    "{instruments} over a {mood} {style} groove, {tempo}",
    "{style} in {key} at {tempo} with {instruments}",
    "{mood} {style} instrumental, {tempo}, {key}, {instruments}",
    "{mood} {style} beat, {tempo}",
)

TEMPO_FORMATS: tuple[str, ...] = ("{} bpm", "{} BPM", "{} beats per minute", "tempo {}")


@attrs.frozen
class CaptionFacts:
    """What a caption may mention."""

    style: str
    tempo: int
    key: str  # e.g. "A minor"
    mood: str
    instruments: tuple[str, ...]  # instrument names, most prominent first


def indefinite_article(word: str) -> str:
    """"an" before a vowel sound ("an uneasy", "an 80s"), else "a" ("a euphoric", "a dark")."""
    w = word.lower()
    vowel = w.startswith(("a", "e", "i", "o", "u", "8")) and not w.startswith(("eu", "uni", "use", "one"))
    return "an" if vowel else "a"


def fix_articles(text: str) -> str:
    """Replace each lowercase article "a" with the right one for the word that follows."""
    return re.sub(r"\ba (\S+)", lambda m: f"{indefinite_article(m.group(1))} {m.group(1)}", text)


def join_words(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def caption(facts: CaptionFacts, rng: np.random.Generator) -> str:
    def choose(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    template = choose(TEMPLATES)
    count = min(len(facts.instruments), int(rng.integers(1, 4)))
    order = rng.permutation(len(facts.instruments))[:count]
    instrument_words = [choose(INSTRUMENT_WORDS[facts.instruments[i]]) for i in sorted(order)]
    if not instrument_words:
        template = template.replace("{instruments}", "sparse textures")
    text = template.format(
        mood=choose(MOOD_WORDS[facts.mood]),
        style=choose(STYLE_WORDS[facts.style]),
        tempo=choose(TEMPO_FORMATS).format(facts.tempo),
        key=facts.key,
        instruments=join_words(instrument_words),
    )
    text = fix_articles(text)
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


# Short prompts: what a performer types ("house at 120 bpm", "deep house with warm pad"), made
# from a full caption by keeping a few of the facts it names. Training on a share of them keeps
# the model's sound for short prompts close to its sound for full captions.
SHORT_TEMPLATES: tuple[str, ...] = (
    "{style}",
    "{style} at {tempo} bpm",
    "{style} {tempo} bpm",
    "{mood} {style}",
    "{mood} {style} at {tempo} bpm",
    "{style} with {instrument}",
    "{style} with {instrument} at {tempo} bpm",
)


def _phrases(table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Every phrase of a word table, longest first (so "deep house" wins over "house")."""
    return tuple(sorted({p for words in table.values() for p in words}, key=len, reverse=True))


_STYLE_PHRASES, _INSTRUMENT_PHRASES, _MOOD_PHRASES = map(_phrases, (STYLE_WORDS, INSTRUMENT_WORDS, MOOD_WORDS))
_TEMPO = re.compile(r"(\d{2,3})\s*(?:bpm|beats per minute)|tempo\s+(\d{2,3})", re.IGNORECASE)


@functools.lru_cache(maxsize=1 << 16)
def _found(text: str, phrases: tuple[str, ...]) -> tuple[str, ...]:
    """The phrases of `phrases` in `text` (whole words, case-insensitive), longest match first, no overlaps.
    Cached: training shortens the same few thousand captions every step (train.short_captions)."""
    taken, hits = text.lower(), []
    for p in phrases:
        pattern = r"(?<![\w-])" + re.escape(p.lower()) + r"(?![\w-])"
        if re.search(pattern, taken):
            hits.append(p)
            taken = re.sub(pattern, " ", taken)
    return tuple(hits)


def short_caption(text: str, rng: np.random.Generator) -> str:
    """A short prompt made of a full caption's facts: its style, and perhaps its tempo, a mood or one
    instrument (templates needing a fact the caption lacks are skipped). A caption naming no style
    is returned as it is."""
    styles = _found(text, _STYLE_PHRASES)
    if not styles:
        return text
    tempo = _TEMPO.search(text)
    facts = {"style": styles[0], "tempo": None if tempo is None else tempo.group(1) or tempo.group(2)}
    moods, instruments = _found(text, _MOOD_PHRASES), _found(text, _INSTRUMENT_PHRASES)
    facts["mood"] = moods[int(rng.integers(len(moods)))] if moods else None
    facts["instrument"] = instruments[int(rng.integers(len(instruments)))] if instruments else None
    usable = [t for t in SHORT_TEMPLATES if all(facts[k] is not None for k in re.findall(r"{(\w+)}", t))]
    return usable[int(rng.integers(len(usable)))].format(**facts)

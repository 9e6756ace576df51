"""Hypothesis strategies for the livecoding language, shared by the language and live-session tests."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from lmdm_dsl import parse_pattern
from lmdm_dsl import values as v


def mini_source(depth: int = 3):
    atoms = st.sampled_from(["c4", "e4", "g4", "a3", "~", "64", "b5"])
    modifier = st.sampled_from(["", "", "*2", "*3", "!2", "@2", "@1.5"])

    def steps(inner):
        return st.lists(st.tuples(inner, modifier).map("".join), min_size=1, max_size=4).map(" ".join)

    def groups(inner):
        no_weights = steps(inner).map(lambda s: s.replace("@1.5", "").replace("@2", "!2"))
        return st.one_of(steps(inner).map(lambda s: f"[{s}]"), no_weights.map(lambda s: f"<{s}>"))

    return steps(st.recursive(atoms, groups, max_leaves=8))


texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20
).filter(str.strip)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)


def floats(lo, hi):
    return st.one_of(st.integers(int(math.ceil(lo)), int(hi)), st.floats(lo, hi, allow_nan=False))


spans = st.builds(v.Span, floats(0, 64), st.sampled_from(v.UNITS))
positive_spans = st.builds(v.Span, floats(0.25, 64), st.sampled_from(v.UNITS))
terms = st.builds(v.PromptTerm, texts, st.none() | floats(0.1, 5))
patterns = st.one_of(
    mini_source().map(lambda s: v.SketchPattern("melody", parse_pattern(s, "melody"))),
    st.sampled_from(["x ~ x x", "x*4", "[x x] ~ <x ~>"]).map(lambda s: v.SketchPattern("rhythm", parse_pattern(s, "rhythm"))),
    st.sampled_from(["0.2 1", "<0 0.5> 1"]).map(lambda s: v.SketchPattern("loudness", parse_pattern(s, "loudness"))),
)
simple_statements = st.one_of(
    st.builds(v.Tempo, floats(*v.TEMPO_RANGE)),
    st.builds(v.Steps, st.integers(*v.STEPS_RANGE)),
    st.builds(v.Cfg, floats(*v.CFG_RANGE)),
    st.builds(v.Seed, st.integers(0, 2**40)),
    st.builds(v.Regime, st.sampled_from(v.REGIMES)),
    st.builds(v.Prompt, st.lists(terms, min_size=1, max_size=3), st.none() | spans),
    patterns,
    st.builds(v.SketchRamp, floats(0, 1), floats(0, 1), positive_spans),
    st.builds(v.SketchOff, st.none() | st.sampled_from(("melody", "rhythm", "loudness"))),
    st.builds(v.Delay, positive_spans, floats(0, 1), floats(0, 1), floats(0, 1), st.lists(texts, max_size=3)),
    st.just(v.DelayOff()),
    st.builds(v.RecordStart, st.from_regex(r"[a-z0-9_/ -]{0,8}[a-z0-9_]\.(wav|flac|ogg)", fullmatch=True)),
    st.just(v.RecordStop()),
    st.just(v.Status()),
    st.just(v.Cancel()),
    st.just(v.Reset()),
)


def with_bodies(inner):
    bodies = st.lists(inner, max_size=3).map(tuple)
    return st.one_of(
        st.builds(v.AtNext, positive_spans, bodies),
        st.builds(v.After, spans, bodies),
        st.builds(v.Every, positive_spans, bodies),
        st.builds(v.SceneDef, names, bodies),
    )


statements = st.recursive(st.one_of(simple_statements, st.builds(v.Play, names)), with_bodies, max_leaves=6)

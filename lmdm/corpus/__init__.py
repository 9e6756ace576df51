"""Procedural music corpus: seeded songs rendered to audio, stems, captions and frame annotations.

    from lmdm.corpus import make_example, write_corpus, CorpusReader

    example = make_example(seed=7, seconds=20.0, style="house")
    write_corpus("data/corpus", hours=2.0, workers=2)
    for crop in CorpusReader("data/corpus").random_crops(seconds=8.0):
        ...

See docs/corpus.md for what is generated and the file format.
"""

from lmdm.corpus.annotate import Annotations
from lmdm.corpus.example import Attributes, Example, make_example
from lmdm.corpus.reader import CorpusReader, Crop, Entry
from lmdm.corpus.score import SECTION_NAMES, STEM_NAMES, Note
from lmdm.corpus.styles import STYLE_NAMES, STYLES
from lmdm.corpus.writer import WriteReport, write_corpus

__all__ = [
    "Annotations",
    "Attributes",
    "CorpusReader",
    "Crop",
    "Entry",
    "Example",
    "Note",
    "SECTION_NAMES",
    "STEM_NAMES",
    "STYLES",
    "STYLE_NAMES",
    "WriteReport",
    "make_example",
    "write_corpus",
]

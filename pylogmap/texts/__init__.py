"""Text sets: load them, build them with the map paper's recipe, identify them by content.

May import: the standard library, numpy, `pylogmap.files`, `pylogmap.errors`.
"""

from pylogmap.texts.textset import (
    DEFAULT_RECIPE,
    TextSet,
    chunk_document,
    iter_corpus,
    load_texts,
    make_texts,
    text_set_hash,
)

__all__ = ["DEFAULT_RECIPE", "TextSet", "chunk_document", "iter_corpus", "load_texts", "make_texts", "text_set_hash"]

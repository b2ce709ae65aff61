"""Text sets: load them, build them with the map paper's recipe, identify them by content.

May import: the standard library, numpy, tqdm, `pylogmap.files`, `pylogmap.errors`.

- `textset`  `TextSet` and `text_set_hash` (the content hash the map file stores);
- `loading`  `load_texts`: a text set from JSON lines, a plain-text file or a folder of .txt files;
- `recipe`   `chunk_document`, `make_texts`, `DEFAULT_RECIPE`: the chunk-and-sample recipe;
- `corpus`   `iter_corpus`: the documents of a corpus for the recipe;
- `records`  what a JSON record's `text` and source fields mean, for all of the above.

A plain-text file holds one text (or document) per non-empty line; a folder holds one per .txt
file. JSON lines hold one per line in a `text` field.
"""

from pylogmap.texts.corpus import iter_corpus
from pylogmap.texts.loading import load_texts
from pylogmap.texts.recipe import DEFAULT_RECIPE, chunk_document, make_texts
from pylogmap.texts.textset import TextSet, text_set_hash

__all__ = ["DEFAULT_RECIPE", "TextSet", "chunk_document", "iter_corpus", "load_texts", "make_texts", "text_set_hash"]

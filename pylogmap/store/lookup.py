"""Finding a map's rows from what a user typed: one rule for every command and table.

`RowLookup(keys)` answers for the rows of a map. Two questions, one matching rule:

- `rows_of(query)`: every row the query names (annotation tables, filtering);
- `one_row(query)`: the single row it names (`pylogmap kl`, `neighbors`, `leakage`, the rows of a
  benchmark table for `pylogmap predict`); a query naming several rows is ambiguous.

**Matching.** A query is tried against the rows in these steps; the first step that finds any
row decides (later steps are fallbacks, never added to an earlier answer):

1. *Exact label.* A row's display label as `pylogmap info` lists it (`name`, `name@revision`,
   `name#L<layer>`, `name@revision#L<layer>`, or `label (2)` for a repeated label) is that row.
   So a plain name that is itself a label (the model at its default revision) is that one row.
2. *Name with optional parts.* `name[@revision][#L<layer>]`, `name` a model name of the map:
   - revisions: `name@rev` picks that revision; without `@` every revision of the model is named;
   - layers (logit-lens rows): `name#L3` picks layer 3; without `#L` the model itself is named
     (layer -1, its final output) when the map has that row, otherwise every layer.
3. *Local folders.* A model scored from a folder may be typed as `./my-model`, `my-model/`, or
   `/abs/path/my-model`: a leading `./` and trailing separators are ignored everywhere; a query
   that is a path matches a row whose name is the same folder (both made absolute from the
   current directory), then a row named by the folder's last component (rows labelled with a
   clean name); a bare name, or a relative path, also matches rows whose name is a path ending in
   that component (an absolute path never matches another folder).
4. *Case.* Only when the exact spelling matched nothing, steps 1-3 are repeated ignoring case
   (the same rules apply; a case-folded query can name several rows).

**Answers.** `rows_of` gives the rows found, in row order. `one_row` gives the row when there is
exactly one, else a `MapFileError`: several rows list their labels (`'Org/A' names 2 rows; pick
one label: Org/A@s1, Org/A@s2 ...`); no row lists close labels (difflib) and says how to write an
exact label. `find(query)` gives the rows found without raising (for tables that report unknown
names together). The same policy is described for users in docs/format.md, "Finding rows".
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from functools import cached_property

from pylogmap.errors import MapFileError
from pylogmap.store.keys import RowKey, unique_labels

_SUFFIX = re.compile(r"^(?:@(?P<rev>.+?))?(?:#L(?P<layer>\d+))?$")
_SUFFIX_FOLDED = re.compile(_SUFFIX.pattern, re.I)
_SEPARATORS = "/\\"
_HOW = "to name one row, write its label as 'pylogmap info' lists it: name, name@revision or name#L<layer>"


def clean(text: str) -> str:
    """`text` without surrounding blanks, leading `./` and trailing path separators."""
    t = text.strip()
    while t[:2] in ("./", ".\\"):
        t = t[2:]
    return t.rstrip(_SEPARATORS) or t


def looks_like_path(text: str) -> bool:
    """Whether a name is written as a folder path (absolute, `./`, `../`, `~`, a trailing or
    Windows separator, or several `/`): hub ids (`org/name`) are not."""
    t = text.strip()
    return (t.startswith(("/", "./", "../", "~", ".\\", "..\\")) or t.endswith(tuple(_SEPARATORS))
            or "\\" in t or t.count("/") >= 2 or re.match(r"^[A-Za-z]:[/\\]", t) is not None)


def _last_component(text: str) -> str:
    return re.split(r"[/\\]", clean(text))[-1]


def _absolute(text: str) -> str:
    return os.path.normcase(os.path.abspath(os.path.expanduser(clean(text))))


#: Forms of a row's name that queries are compared with (None: the name has no such form).
_FORMS = {
    "clean": clean,
    "absolute": lambda name: _absolute(name) if looks_like_path(name) else None,
    "last": lambda name: _last_component(name) if looks_like_path(name) else None,
}


class RowLookup:
    """Rows of a map by what a user types (see the module docstring for the policy).

    `keys`: the rows' keys in row order; `labels`: their display labels (default: computed from
    the keys as `MapFile.labels()` does); `where`: how errors name the map (a file name).
    """

    def __init__(self, keys: Sequence[RowKey], labels: Sequence[str] | None = None, *, where: str = "the map"):
        self.keys = [RowKey(str(k[0]), str(k[1]), int(k[2])) for k in keys]
        self.labels = list(labels) if labels is not None else unique_labels(self.keys)
        if len(self.labels) != len(self.keys):
            raise MapFileError(f"{len(self.labels)} labels for {len(self.keys)} rows.")
        self.where = where
        self._indexes: dict[tuple[str, bool], dict[str, list[int]]] = {}

    # -- indexes, each built on first use ---------------------------------------------------
    def _index(self, form: str, fold: bool) -> dict[str, list[int]]:
        """Rows by a form of their label or name: "label", "clean" (name), "absolute" or "last"
        (of names that are folder paths); casefolded when `fold`."""
        index = self._indexes.get((form, fold))
        if index is None:
            index = {}
            if form == "label":
                texts = self.labels
            else:
                shape = _FORMS[form]
                texts = [shape(k.name) for k in self.keys]
            for i, text in enumerate(texts):
                if text is not None:
                    index.setdefault(text.casefold() if fold else text, []).append(i)
            self._indexes[(form, fold)] = index
        return index

    # -- matching -------------------------------------------------------------------------
    def _by_name(self, query: str, form: str, fold: bool) -> list[int]:
        """Rows whose name (in `form`) is a prefix of `query` followed by `@revision` and/or
        `#L<layer>` (or nothing), filtered by those parts (step 2 of the policy)."""
        index = self._index(form, fold)
        q = query.casefold() if fold else query
        cuts = {len(q)} | {j for j, ch in enumerate(q) if ch in "@#"}
        pattern = _SUFFIX_FOLDED if fold else _SUFFIX
        found: set[int] = set()
        for j in cuts:
            rows = index.get(q[:j])
            if not rows:
                continue
            parts = pattern.match(q[j:])
            if parts is None:
                continue
            rev, layer = parts.group("rev"), parts.group("layer")
            if rev is not None:
                rows = [i for i in rows if (self.keys[i].revision.casefold() if fold else self.keys[i].revision) == rev]
            if layer is not None:
                rows = [i for i in rows if self.keys[i].layer == int(layer)]
            elif any(self.keys[i].layer < 0 for i in rows):
                rows = [i for i in rows if self.keys[i].layer < 0]
            found.update(rows)
        return sorted(found)

    def _match(self, query: str, fold: bool) -> list[int]:
        label = query.strip()
        rows = self._index("label", fold).get(label.casefold() if fold else label)
        if rows:
            return sorted(rows)
        q = clean(query)
        rows = self._by_name(q, "clean", fold)
        if rows or not q:
            return rows
        if not looks_like_path(query):  # a bare name: rows named by a folder path ending in it
            return self._by_name(q, "last", fold)
        last = _last_component(q)
        rows = self._by_name(_absolute(q), "absolute", fold) or self._by_name(last, "clean", fold)
        if not rows and not os.path.isabs(os.path.expanduser(q)):  # a relative path: any folder of that name
            rows = self._by_name(last, "last", fold)
        return rows

    def find(self, query: str) -> list[int]:
        """Every row `query` names (row order); [] when it names none."""
        if not isinstance(query, str) or not query.strip():
            return []
        return self._match(query, fold=False) or self._match(query, fold=True)

    # -- answers --------------------------------------------------------------------------
    def rows_of(self, query: str) -> list[int]:
        """Every row `query` names; a MapFileError with close labels when it names none."""
        rows = self.find(query)
        if not rows:
            raise MapFileError(self.miss_message(query))
        return rows

    def one_row(self, query: str) -> int:
        """The single row `query` names; a MapFileError listing the candidates when it names
        several, or close labels when it names none."""
        rows = self.rows_of(query)
        if len(rows) > 1:
            raise MapFileError(self.ambiguity_message(query, rows))
        return rows[0]

    @cached_property
    def _candidates(self) -> tuple[list[str], dict[str, str]]:
        """Labels and names, sorted, and by their casefolded spelling (for suggestions)."""
        candidates = sorted(set(self.labels) | {k.name for k in self.keys})
        folded: dict[str, str] = {}
        for c in candidates:
            folded.setdefault(c.casefold(), c)
        return candidates, folded

    def close_labels(self, query: str, n: int = 5) -> list[str]:
        """Up to `n` labels or names that look like `query` (difflib, ignoring case), then ones
        that contain it."""
        candidates, folded = self._candidates
        q = clean(query).casefold()
        close = [folded[c] for c in difflib.get_close_matches(q, list(folded), n=n, cutoff=0.6)]
        if len(close) < n and q:
            close += [c for c in candidates if q in c.casefold() and c not in close][: n - len(close)]
        return close

    def miss_message(self, query: str) -> str:
        """One line: `query` names no row; close labels, and how to write an exact one."""
        close = self.close_labels(query)
        head = f"no model {query!r} in {self.where} ({len(self.keys)} rows)"
        if close:
            return f"{head}. Did you mean: {', '.join(close)}? ({_HOW})"
        return f"{head}; {_HOW}."

    def ambiguity_message(self, query: str, rows: Sequence[int]) -> str:
        """One line: `query` names several rows; their labels, and how to pick one."""
        choices = ", ".join(self.labels[i] for i in rows[:8]) + (" ..." if len(rows) > 8 else "")
        return (f"{query!r} names {len(rows)} rows; pick one label: {choices} "
                "(name@revision picks a revision, name#L<layer> a layer).")

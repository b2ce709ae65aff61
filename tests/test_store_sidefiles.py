"""The files a map keeps beside itself (journal folder, per-token folder, the file being built,
the writer lock): the store deletes only what it made and can prove it made, for the map being
replaced; anything else is left as it is, with a message naming it and what to do."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pylogmap.errors import MapFileError
from pylogmap.store import MapFile, ScoreWriter, open_map
from pylogmap.store.markers import MARKER
from pylogmap.texts import TextSet


def texts(tag: str = "") -> TextSet:
    return TextSet.from_texts([f"text {k}{tag}" for k in range(4)])


def score(path, ts, tokens: bool = False) -> None:
    n = len(ts)
    with ScoreWriter(path, ts, overwrite=True) as w:
        w.record("a", -np.ones(n), np.full(n, 2), token_logprobs=[np.array([-0.5, -0.5])] * n if tokens else None)


def user_folder(folder, *names: str) -> dict[str, bytes]:
    folder.mkdir()
    content = {}
    for name in names:
        (folder / name).write_bytes(name.encode())
        content[name] = name.encode()
    return content


def untouched(folder, content: dict[str, bytes]) -> bool:
    return {p.name: p.read_bytes() for p in folder.iterdir()} == content


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_tokens_folder_is_never_deleted_by_a_new_map(tmp_path, overwrite):
    path = tmp_path / "proj.h5"
    folder = tmp_path / "proj.tokens"
    # files named like pylogmap's own, but no marker: nothing proves pylogmap made them
    content = user_folder(folder, "0123456789abcdef0123.h5", "notes.txt")
    with pytest.raises(MapFileError, match=r"proj\.tokens.*was not made by pylogmap.*not even with --force \(or --overwrite\); move it"):
        MapFile.create(path, texts(), overwrite=overwrite)
    assert untouched(folder, content) and not path.exists()
    (folder / "notes.txt").unlink()
    del content["notes.txt"]
    with pytest.raises(MapFileError, match="was not made by pylogmap"):
        MapFile.create_with_rows(path, texts(), ["a"], -np.ones((1, 4)), overwrite=overwrite)
    assert untouched(folder, content) and not path.exists()


def test_a_refusal_leaves_the_old_map_and_its_journal_as_they_were(tmp_path):
    path = tmp_path / "proj.h5"
    ts = texts()
    w = ScoreWriter(path, ts, commit_interval=3600)
    w.record("a", -np.ones(4), np.full(4, 2))
    w._committer.lock.release()  # the writer dies with its result in the journal
    journal = sorted(p.name for p in (tmp_path / "proj.h5.journal").iterdir())
    user_folder(tmp_path / "proj.tokens", "mine.txt")
    with pytest.raises(MapFileError, match="was not made by pylogmap"):
        MapFile.create(path, texts("b"), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "proj.h5.journal").iterdir()) == journal
    with open_map(path) as mf:  # the killed writer's result is still committed by the next reader
        assert mf.text_hash == ts.hash and mf.labels() == ["a"]


def test_the_side_folders_of_the_map_being_replaced_go_with_it(tmp_path):
    path = tmp_path / "proj.h5"
    score(path, texts(), tokens=True)
    folder = tmp_path / "proj.tokens"
    marker = json.loads((folder / MARKER).read_text())
    with open_map(path) as mf:
        assert marker == {"made_by": "pylogmap", "kind": "tokens", "map": "proj.h5", "map_id": mf.map_id,
                          "pending": False}
        assert mf.token_logprobs(0) is not None
    score(path, texts("b"))  # --force over it: its per-token folder is the replaced map's
    assert not folder.exists()
    with open_map(path) as mf:
        assert mf.text_hash == texts("b").hash and mf.token_logprobs(0) is None


def test_a_marked_folder_of_another_map_goes_only_when_asked(tmp_path):
    path = tmp_path / "proj.h5"
    score(tmp_path / "other.h5", texts(), tokens=True)
    (tmp_path / "other.tokens").rename(tmp_path / "proj.tokens")
    with pytest.raises(MapFileError, match=r"proj\.tokens.*of another map .*move it away to keep it, or pass"):
        MapFile.create(path, texts())
    assert (tmp_path / "proj.tokens" / MARKER).exists()
    MapFile.create(path, texts(), overwrite=True).close()
    assert not (tmp_path / "proj.tokens").exists()


def test_a_marked_folder_with_files_pylogmap_did_not_make_is_kept(tmp_path):
    path = tmp_path / "proj.h5"
    score(path, texts(), tokens=True)
    (tmp_path / "proj.tokens" / "analysis.csv").write_text("mine")
    with pytest.raises(MapFileError, match=r"holds files pylogmap did not make \(analysis\.csv\); move them out"):
        MapFile.create(path, texts("b"), overwrite=True)
    assert (tmp_path / "proj.tokens" / "analysis.csv").read_text() == "mine"
    with open_map(path) as mf:
        assert mf.text_hash == texts().hash


def test_a_journal_folder_holding_other_files_is_refused_and_kept(tmp_path):
    path = tmp_path / "proj.h5"
    MapFile.create(path, texts()).close()
    content = user_folder(tmp_path / "proj.h5.journal", "todo.txt")
    with pytest.raises(MapFileError, match=r"proj\.h5\.journal.*holds files pylogmap did not make \(todo\.txt\)"):
        ScoreWriter(path, texts())
    assert untouched(tmp_path / "proj.h5.journal", content)


def test_a_tmp_file_pylogmap_did_not_build_is_in_the_way(tmp_path):
    path = tmp_path / "proj.h5"
    (tmp_path / "proj.h5.tmp").write_text("mine")
    with pytest.raises(MapFileError, match=r"proj\.h5\.tmp.*was not made by pylogmap; move it away"):
        MapFile.create(path, texts())
    assert (tmp_path / "proj.h5.tmp").read_text() == "mine"


def test_a_half_built_file_pylogmap_left_is_cleared(tmp_path):
    path = tmp_path / "proj.h5"
    MapFile.create(tmp_path / "built.h5", texts()).close()
    (tmp_path / "built.h5").rename(tmp_path / "proj.h5.tmp")  # what a create killed before its rename leaves
    MapFile.create(path, texts("b")).close()
    assert not (tmp_path / "proj.h5.tmp").exists()
    with open_map(path) as mf:
        assert mf.text_hash == texts("b").hash


def test_a_lock_file_pylogmap_did_not_write_is_not_taken(tmp_path):
    path = tmp_path / "proj.h5"
    (tmp_path / "proj.h5.lock").write_text("my notes\n")
    with pytest.raises(MapFileError, match=r"proj\.h5\.lock.*not made by pylogmap; move it away"):
        MapFile.create(path, texts())
    assert (tmp_path / "proj.h5.lock").read_text() == "my notes\n" and not path.exists()

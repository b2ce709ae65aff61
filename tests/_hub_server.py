"""A Hugging Face hub on 127.0.0.1 for the tests: the hub's HTTP interface over repositories in memory.

huggingface_hub has no offline stand-in for the hub, and a cache written by hand would only be an
imitation of its layout. So the tests run `huggingface_hub.snapshot_download` (what `hf download`
runs) against this server, and the cache on disk is the one huggingface_hub itself writes
(`models--org--name/{refs,snapshots,blobs}`). The same server, reached through HF_ENDPOINT, answers
the failures a user meets the way the hub does: an HTTP status plus the `X-Error-Code` header that
huggingface_hub turns into its exceptions.

Served (the calls huggingface_hub 1.x makes to download and resolve):

- `GET /api/models/<org>/<name>[/revision/<rev>]`: repository info (`sha` of the revision, files);
- `GET /api/models/<org>/<name>/tree/<rev>[/<folder>]`: the file list of a revision;
- `GET /api/models/<org>/<name>/refs`: branches and tags;
- `HEAD|GET /<org>/<name>/resolve/<rev>/<path>`: a file, with `X-Repo-Commit` and `ETag`
  (the git blob id, or the sha256 for large-file-storage files such as weights).

Errors: an unknown or private repository answers 401 `RepoNotFound` (404 with a token), a gated
one 401/403 `GatedRepo` for its files (its info stays public, as on the hub), an unknown revision
404 `RevisionNotFound`, a missing file 404 `EntryNotFound` (with `X-Repo-Commit`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

#: Files the hub keeps in large-file storage (their ETag is the content's sha256).
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


@dataclass
class FakeRepo:
    """One repository: commits (commit id -> files), branches and tags (name -> commit id)."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    access: str = "public"  # "public", "gated" or "private"

    def commit_of(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision in self.commits:
            return revision
        return None


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def etag_of(path: str, data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if path.endswith(LFS_SUFFIXES) else git_blob_id(data)


class FakeHub:
    """The hub's HTTP interface on 127.0.0.1 (a free port); `with FakeHub() as hub:` stops it on exit.

    `push(repo_id, files, branch)` adds a commit (files: path -> bytes) and points the branch at it;
    `tag(...)`, `set_access(...)` complete a repository. `token` is the one token it accepts.
    `requests` lists the (method, path) of every request served.
    """

    token = "hf_fake_token_for_tests"

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeHub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- content ------------------------------------------------------------------------------
    def push(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Add a commit holding `files` and point `branch` at it; returns the commit id."""
        repo = self.repos.setdefault(repo_id, FakeRepo())
        digest = hashlib.sha1(repo_id.encode() + b"\0" + branch.encode() + b"\0%d" % len(repo.commits))
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + etag_of(path, files[path]).encode())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.branches[branch] = commit
        return commit

    def point(self, repo_id: str, branch: str, commit: str) -> None:
        """Point `branch` (created if new) at an existing commit."""
        self.repos[repo_id].branches[branch] = commit

    def tag(self, repo_id: str, tag: str, commit: str) -> None:
        self.repos[repo_id].tags[tag] = commit

    def set_access(self, repo_id: str, access: str) -> None:
        assert access in ("public", "gated", "private")
        self.repos[repo_id].access = access


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        # -- answers ------------------------------------------------------------------------
        def _send(self, status: int, data: bytes = b"", headers: dict | None = None, body: bool = True,
                  content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body and data:
                self.wfile.write(data)

        def _json(self, obj, body: bool) -> None:
            self._send(200, json.dumps(obj).encode(), body=body)

        def _error(self, status: int, code: str, message: str, body: bool, extra: dict | None = None) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})}
            self._send(status, json.dumps({"error": message}).encode(), headers, body=body)

        def _authorized(self) -> bool:
            return self.headers.get("authorization", "") == f"Bearer {hub.token}"

        def _repo(self, repo_id: str, body: bool, *, files: bool) -> FakeRepo | None:
            """The repository if this request may see it (else the hub's error is sent)."""
            repo = hub.repos.get(repo_id)
            authorized = self._authorized()
            if repo is None or (repo.access == "private" and not authorized):
                status = 404 if authorized else 401
                self._error(status, "RepoNotFound", "Repository not found", body)
                return None
            if files and repo.access == "gated" and not authorized:
                has_token = bool(self.headers.get("authorization"))
                message = (f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                           f"Visit {hub.url}/{repo_id} to ask for access." if has_token else
                           f"Access to model {repo_id} is restricted. You must have access to it and be "
                           "authenticated to access it. Please log in.")
                self._error(403 if has_token else 401, "GatedRepo", message, body)
                return None
            return repo

        def _commit(self, repo: FakeRepo, revision: str, body: bool) -> str | None:
            commit = repo.commit_of(revision)
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
            return commit

        # -- routing ------------------------------------------------------------------------
        def _serve(self, body: bool) -> None:
            path = urlsplit(self.path).path
            hub.requests.append((self.command, path))
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id, rest = f"{parts[2]}/{parts[3]}", parts[4:]
                if not rest or rest[0] == "revision":
                    return self._info(repo_id, "/".join(rest[1:]) or "main", body)
                if rest[0] == "tree" and len(rest) >= 2:
                    return self._tree(repo_id, rest[1], "/".join(rest[2:]), body)
                if rest == ["refs"]:
                    return self._refs(repo_id, body)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._file(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), body)
            self._send(404, b'{"error": "not served by the test hub"}', body=body)

        def _info(self, repo_id: str, revision: str, body: bool) -> None:
            repo = self._repo(repo_id, body, files=False)
            if repo is None or (commit := self._commit(repo, revision, body)) is None:
                return
            self._json({"id": repo_id, "modelId": repo_id, "sha": commit, "private": repo.access == "private",
                        "gated": "manual" if repo.access == "gated" else False,
                        "siblings": [{"rfilename": p} for p in sorted(repo.commits[commit])]}, body)

        def _tree(self, repo_id: str, revision: str, folder: str, body: bool) -> None:
            repo = self._repo(repo_id, body, files=False)
            if repo is None or (commit := self._commit(repo, revision, body)) is None:
                return
            prefix = folder.strip("/") + "/" if folder.strip("/") else ""
            entries = []
            for p, data in sorted(repo.commits[commit].items()):
                if not p.startswith(prefix):
                    continue
                entry = {"type": "file", "path": p, "size": len(data), "oid": git_blob_id(data)}
                if p.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"oid": etag_of(p, data), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            if prefix and not entries:
                self._error(404, "EntryNotFound", f"{folder} does not exist on {revision}", body,
                            {"X-Repo-Commit": commit})
                return
            self._json(entries, body)

        def _refs(self, repo_id: str, body: bool) -> None:
            repo = self._repo(repo_id, body, files=False)
            if repo is None:
                return
            self._json({
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c}
                             for n, c in repo.branches.items()],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in repo.tags.items()],
                "converts": [],
            }, body)

        def _file(self, repo_id: str, revision: str, path: str, body: bool) -> None:
            repo = self._repo(repo_id, body, files=True)
            if repo is None or (commit := self._commit(repo, revision, body)) is None:
                return
            data = repo.commits[commit].get(path)
            if data is None:
                self._error(404, "EntryNotFound", f"{path} does not exist on {revision}", body,
                            {"X-Repo-Commit": commit})
                return
            self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag_of(path, data)}"'},
                       body=body, content_type="application/octet-stream")

    return Handler

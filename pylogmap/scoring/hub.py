"""Hub ids and revisions: a (repository, revision) resolved to its commit, and hub failures explained.

`resolve_commit(repo_id, revision)` turns a branch, tag or commit into the commit it names, through
`huggingface_hub`'s own `resolve_revision`: on the hub when it can be reached, else from the local
cache's `refs/` (written by `hf download --revision ...`). The model is then loaded at that commit,
so every file of it comes from one commit, and the commit is recorded with the row (a rerun can
tell when a branch has moved since).

Every failure a user meets is turned into one line that names the problem and the fix (the
hub's exceptions are found in the cause chain of what transformers raises too, see `explain`):
a repository or revision that is not in the cache while the hub is unreachable (or
HF_HUB_OFFLINE=1), a revision that does not exist (listing those that do, when known), a gated or
private repository (a token is needed), and the hub answering an error.

`huggingface_hub` is imported inside the functions (its errors module pulls in an HTTP client),
so `import pylogmap.scoring` stays light.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import constants

from pylogmap.errors import ModelLoadError

COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHOWN = 8  # revisions listed in a message before "..."


def is_commit(revision: str | None) -> bool:
    """Whether `revision` is a full commit hash (immutable: nothing to resolve)."""
    return bool(revision) and COMMIT.match(revision) is not None


def hub_reachable(timeout: float = 3.0) -> bool:
    """False under HF_HUB_OFFLINE, or when the hub's host does not accept a connection in `timeout`
    seconds (so an offline machine fails at once instead of waiting for HTTP timeouts)."""
    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def offline_reason() -> str:
    """Why the hub is not used: HF_HUB_OFFLINE, or the endpoint that did not answer."""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return f"the hub ({constants.ENDPOINT}) is unreachable"


def label(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision}" if revision else repo_id


def download_command(repo_id: str, revision: str | None, filename: str = "") -> str:
    """The `hf download` command line that puts this revision into the cache."""
    parts = ["hf download", repo_id]
    if filename:
        parts.append(filename)
    if revision:
        parts.append(f"--revision {revision}")
    return " ".join(parts)


def repo_cache_dir(repo_id: str) -> Path:
    """The cache folder of a model repository (`models--org--name` under HF_HUB_CACHE)."""
    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def cached_revisions(repo_id: str) -> list[str] | None:
    """The branch and tag names cached for `repo_id` (its `refs/`), or None if it is not cached."""
    refs = repo_cache_dir(repo_id) / "refs"
    if not refs.is_dir():
        return None
    names = [str(p.relative_to(refs)).replace(os.sep, "/") for p in refs.rglob("*") if p.is_file()]
    return sorted(names, key=_natural)


def hub_revisions(repo_id: str) -> list[str] | None:
    """The branch and tag names of `repo_id` on the hub, or None when they cannot be listed."""
    from huggingface_hub import HfApi

    try:
        refs = HfApi(endpoint=constants.ENDPOINT).list_repo_refs(repo_id)
    except Exception:  # noqa: BLE001 - only used to make an error message more helpful
        return None
    return sorted({r.name for r in [*refs.branches, *refs.tags]}, key=_natural)


def _natural(name: str) -> list:
    """Sort key putting step2 before step10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN]) + (f" ... ({len(names)} in all)" if len(names) > _SHOWN else "")
    return shown or "none"


def resolve_commit(repo_id: str, revision: str | None, *, online: bool | None = None) -> str:
    """The commit `revision` (None or "": the default branch) of `repo_id` names.

    `online`: ask the hub (None: when it is reachable); otherwise the local cache answers. Raises
    `ModelLoadError` with the message for the failure (see the module docstring).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RevisionResolutionError

    if is_commit(revision):
        return str(revision)
    if online is None:
        online = hub_reachable()
    try:
        resolved = HfApi(endpoint=constants.ENDPOINT).resolve_revision(
            repo_id, revision=revision or None, local_files_only=not online)
    except RevisionResolutionError:
        raise ModelLoadError(not_cached_message(repo_id, revision)) from None
    except HfHubHTTPError as err:
        raise ModelLoadError(explain(err, repo_id, revision) or _fallback(err, repo_id, revision)) from None
    return resolved.resolved


def not_cached_message(repo_id: str, revision: str | None, filename: str = "") -> str:
    """One line for a repository (or revision) the local cache does not hold, the hub not asked."""
    cached = cached_revisions(repo_id)
    fetch = f"`{download_command(repo_id, revision, filename)}`"
    if cached is None:
        return (f"cannot load hub model {label(repo_id, revision)!r}: {offline_reason()} and the model is not in "
                f"the local cache ({constants.HF_HUB_CACHE}). Download it where there is internet ({fetch}) and "
                "copy the cache here (set HF_HOME to it, with HF_HUB_OFFLINE=1), or save it with "
                "`save_pretrained(DIR)` and pass DIR as the model.")
    return (f"cannot load hub model {label(repo_id, revision)!r}: {offline_reason()} and revision "
            f"{revision or 'main'!r} is not in the local cache, which holds {_listing(cached)}; download it "
            f"where there is internet ({fetch}) and copy the cache here.")


def explain(err: BaseException, repo_id: str, revision: str | None, filename: str = "") -> str | None:
    """One line for a hub failure found in `err` or its causes, or None when there is none."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = label(repo_id, revision)
    token = "set HF_TOKEN to a token that has access, or log in with `hf auth login`"
    for e in _chain(err):
        if isinstance(e, GatedRepoError):
            return (f"cannot load hub model {at!r}: the repository is gated; accept its conditions on "
                    f"{constants.ENDPOINT}/{repo_id} with your account, then {token}.")
        if isinstance(e, RepositoryNotFoundError):
            return (f"cannot load hub model {at!r}: the hub has no repository {repo_id!r} that this machine may "
                    f"see; check the id, and if the repository is private {token}.")
        if isinstance(e, RevisionNotFoundError):
            known = hub_revisions(repo_id)
            which = f"; it has {_listing(known)}" if known is not None else ""
            return (f"cannot load hub model {at!r}: repository {repo_id!r} has no revision {revision or 'main'!r}"
                    f"{which}. Check the branch, tag or commit (a --revisions range must name revisions that exist).")
        if isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled)) and not hub_reachable():
            return not_cached_message(repo_id, revision, filename)
        if isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code >= 500:
            return (f"cannot load hub model {at!r}: the hub answered HTTP {e.response.status_code}; try again "
                    "later, or use a filled local cache with HF_HUB_OFFLINE=1.")
    return None


def _fallback(err: BaseException, repo_id: str, revision: str | None) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"cannot load hub model {label(repo_id, revision)!r}: {type(err).__name__}: {first}"


def _chain(err: BaseException):
    """`err` and its causes/contexts, each once."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__

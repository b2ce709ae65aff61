"""Load a causal language model for scoring: from the hub, a local directory or a GGUF file.

`load_model(spec)` accepts a Hugging Face hub id (with an optional revision), a GGUF file of a hub
repository (`org/name/file.gguf`), a local model directory, or a `.gguf` file, and returns a
`LoadedModel` (`prepare` does the same for a model already in memory), taken apart by `heads`:

- `body`: the module that returns the *final* hidden states (the model's own final norm applied),
  i.e. exactly what the causal-LM wrapper feeds to its LM head (`model.model`,
  `model.transformer`, `model.gpt_neox`, ... found through `base_model_prefix`);
- `head`: a `heads.HeadSpec(weight, bias, softcap, scale)` so the scorer can apply the head
  itself, block by block, through the fused path (`pylogmap.kernels.head_logprobs`);
- `final_norm`: the modules that turn an intermediate hidden state into one the head accepts (for
  the logit lens);
- `info`: metadata recorded with every row (architecture, parameter count, dtype, context length,
  tokenizer hash, which head path is used).

The head is verified once at load time: on a short probe sequence the model's own logits must match
what `HeadSpec` gives (to a tolerance set by the weight dtype). A head that does not match, or that
is not a plain linear layer, is not guessed at: the model is scored through its own logits instead
(`head is None`), computed on batches small enough that one batch's logits stay under a memory
budget, and the row's metadata says so.

A hub model is loaded through transformers' own hub path at the commit its revision resolves to
(`hub.resolve_commit`), from the local cache when it holds it (offline: only from there); the
commit is recorded. A model that is not causal (an encoder loaded with a language-model head) is
refused (`causality.check_causal`), as are failures to load, each with a one-line message.

dtype "auto" means the checkpoint's own dtype on a GPU and float32 on the CPU: CPUs have no fast
bf16/fp16 matrix units in general (PyTorch's CPU half-precision paths are slower than fp32 and
accumulate less exactly), so fp32 is both the fastest and the most accurate choice there.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pylogmap.errors import ModelLoadError
from pylogmap.scoring import hub
from pylogmap.scoring.causality import check_causal
from pylogmap.scoring.heads import HeadSpec, extract_head, find_body, find_final_norm, verify_head
from pylogmap.scoring.tokenize import tokenizer_hash

DTYPES = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
DEFAULT_MAX_LENGTH = 2048

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# a GGUF file inside a hub repository: org/name/path/to/file.gguf
_HUB_GGUF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)/(?P<file>[^/].*\.gguf)$", re.I)


@dataclass
class ModelInfo:
    """What is recorded about a model next to its scores."""

    name: str
    revision: str
    architecture: str
    n_params: int
    dtype: str
    device: str
    max_length: int
    n_layers: int
    vocab_size: int
    tokenizer_hash: str
    head_path: str  # "fused" or "model-logits"
    head_note: str = ""
    source: str = ""  # "hub", "directory" or "gguf"
    commit: str = ""  # hub models: the commit the revision resolved to
    path: str = ""  # local models: the absolute path of the folder or file
    n_embeddings: int = 0  # rows of the input embedding: every token id must be below it

    def as_meta(self) -> dict:
        meta = {
            "device": self.device,
            "head": self.head_path,
            "head_note": self.head_note,
            "n_layers": self.n_layers,
            "vocab_size": self.vocab_size,
            "source": self.source,
        }
        if self.commit:
            meta["commit"] = self.commit
        if self.path:
            meta["path"] = self.path
        return meta


@dataclass
class LoadedModel:
    """A model ready for scoring: its body, head parts, tokenizer and metadata."""

    model: Any
    body: Any
    head: HeadSpec | None
    final_norm: list = field(default_factory=list)
    tokenizer: Any = None
    info: ModelInfo | None = None

    @property
    def device(self):
        return self.head.weight.device if self.head is not None else next(self.model.parameters()).device

    def forward_hidden(self, input_ids, attention_mask, *, all_layers: bool = False):
        """Final hidden states `[B, T, d]` (and, with `all_layers`, the tuple of every layer's)."""
        out = self.body(
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=False,
            output_hidden_states=all_layers,
            return_dict=True,
        )
        if all_layers:
            return out.last_hidden_state, out.hidden_states
        return out.last_hidden_state

    def forward_logits(self, input_ids, attention_mask):
        """The model's own logits `[B, T, V]` in its dtype (only for the fallback head path)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def lens(self, hidden):
        """Apply the final norm (and any output projection) to an intermediate hidden state."""
        for module in self.final_norm:
            hidden = module(hidden)
        return hidden

    def release(self) -> None:
        """Drop the weights and return GPU memory (the next model gets all of it)."""
        import torch

        self.model = self.body = self.head = None
        self.final_norm = []
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------- resolution

def resolve_device(device: str = "auto"):
    """The torch.device for "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N"."""
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise ModelLoadError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} (or cuda:N).")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            "device 'cuda' was asked for but PyTorch sees no CUDA GPU here; use --device cpu "
            "(or --device auto), or install a CUDA build of PyTorch."
        )
    return torch.device(device)


def resolve_dtype(dtype: str, device) -> Any:
    """torch dtype for `from_pretrained`, or "auto" for the checkpoint's own (GPU only)."""
    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    if dtype not in table:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    return table[dtype]


def classify_spec(spec: str) -> str:
    """"gguf", "directory", "hub" or "hub-gguf" (`org/name/file.gguf`) for a model spec; raises for
    a local path that does not exist."""
    path = Path(os.path.expanduser(spec))
    if spec.lower().endswith(".gguf"):
        if path.is_file():
            return "gguf"
        if _HUB_GGUF.match(spec) and not spec.startswith((".", "/", "~")):
            return "hub-gguf"
        raise ModelLoadError(f"GGUF file {spec!r} does not exist; check the path (a GGUF file of a hub "
                             "repository is written org/name/file.gguf).")
    if path.is_dir():
        return "directory"
    if path.exists():
        raise ModelLoadError(
            f"{spec!r} is a file but not a .gguf file; pass a model directory, a .gguf file or a hub id."
        )
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").replace("/", "", 1)
    if looks_like_path or not _HUB_ID.match(spec):
        raise ModelLoadError(
            f"model {spec!r} is neither an existing directory, a .gguf file nor a valid Hugging Face "
            "hub id (like 'EleutherAI/pythia-70m'); check the spelling or the path."
        )
    return "hub"


def hub_parts(spec: str) -> tuple[str, str]:
    """(repository id, GGUF file inside it or "") of a hub spec."""
    match = _HUB_GGUF.match(spec)
    return (match.group("repo"), match.group("file")) if match else (spec, "")


# --------------------------------------------------------------------------- loading

def load_model(
    spec: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load `spec` (hub id, `org/name/file.gguf`, local directory or .gguf file) for scoring.

    A hub model is loaded at the commit its revision resolves to (`hub.resolve_commit`): from the
    local cache when it holds that commit, else from the hub when it can be reached. See the
    module docstring for the rest.
    """
    spec = str(spec)
    kind = classify_spec(spec)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if revision and kind not in ("hub", "hub-gguf"):
        raise ModelLoadError(
            f"--revision {revision!r} only applies to hub ids, but {spec!r} is a local {kind}; "
            "pass each local checkpoint as its own model instead."
        )

    load_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    repo_id, filename, commit, path = "", "", "", ""
    if kind in ("gguf", "hub-gguf"):
        _require_gguf(spec)
    if kind == "gguf":
        resolved = Path(os.path.expanduser(spec)).resolve()
        location, path = str(resolved.parent), str(resolved)
        load_kwargs["gguf_file"] = resolved.name
    elif kind == "directory":
        location = os.path.expanduser(spec)
        path = str(Path(location).resolve())
        if not (Path(location) / "config.json").is_file():
            raise ModelLoadError(
                f"directory {spec!r} holds no config.json, so it is not a Hugging Face model folder; "
                "save the model there with `model.save_pretrained(DIR)` and `tokenizer.save_pretrained(DIR)`."
            )
    else:
        repo_id, filename = hub_parts(spec)
        online = hub.hub_reachable()
        commit = hub.resolve_commit(repo_id, revision, online=online)
        location = repo_id
        load_kwargs.update(revision=commit, local_files_only=not online)
        if filename:
            load_kwargs["gguf_file"] = filename

    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(location, **load_kwargs)
        model_kw = dict(load_kwargs, dtype=torch_dtype)
        if torch_device.type == "cuda" and _has_accelerate():
            model_kw["device_map"] = str(torch_device)  # load straight onto the GPU
        model = AutoModelForCausalLM.from_pretrained(location, **model_kw)
    except ModelLoadError:
        raise
    except Exception as err:  # transformers raises OSError/ValueError/KeyError with useful text
        message = hub.explain(err, repo_id, revision, filename) if repo_id else None
        raise ModelLoadError(message or _explain_load_error(spec, revision, err)) from err

    model.eval()
    model.requires_grad_(False)
    model.to(torch_device)
    source = "hub" if repo_id else kind
    return prepare(model, tokenizer, name=spec, revision=revision or "", source=source, commit=commit, path=path)


def _require_gguf(spec: str) -> None:
    try:
        import gguf  # noqa: F401
        import accelerate  # noqa: F401
    except ImportError as err:
        raise ModelLoadError(
            f"reading {spec!r} needs the 'gguf' and 'accelerate' packages ({err.name} is missing): "
            "pip install gguf accelerate (both are dependencies of pylogmap; reinstall it)."
        ) from None


def _has_accelerate() -> bool:
    return importlib.util.find_spec("accelerate") is not None


def _explain_load_error(spec: str, revision: str | None, err: Exception) -> str:
    """One line for a failure of transformers to load `spec`: what it says, and the fix."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    low = str(err).lower()
    at = f"{spec}@{revision}" if revision else spec
    if "trust_remote_code" in low or "contains custom code" in low:
        return (f"cannot load model {at!r}: it ships its own model code, which runs only with "
                "--trust-remote-code; pass it if you trust that repository.")
    kind = re.search(r"configuration class <class '[\w.]*\.(\w+)Config'>", str(err))
    if kind or "unrecognized configuration class" in low or "automodelforcausallm" in low:
        what = f"a {kind.group(1)} model" if kind else "this model"
        return (f"cannot load model {at!r}: {what} has no causal language-model head in transformers (an "
                "encoder, or another kind of model); score decoder-only (causal) language models.")
    if "revision" in low or (revision and "not a valid git identifier" in low):
        hint = f"check that revision {revision!r} exists (a branch, tag or commit of the repository)."
    elif "safetensors" in low or "pytorch_model" in low or "no file named" in low:
        hint = "the folder has a config but no weights; save them with model.save_pretrained(DIR)."
    elif "tokenizer" in low:
        hint = "the tokenizer files are missing or unreadable; save them with tokenizer.save_pretrained(DIR)."
    else:
        hint = "check that it is a causal language model transformers can load."
    return f"cannot load model {at!r}: {type(err).__name__}: {text} ({hint})"


def prepare(model, tokenizer, *, name: str, revision: str = "", source: str = "", commit: str = "",
            path: str = "") -> LoadedModel:
    """Take an already loaded transformers causal LM apart into body, head, lens norm and metadata.

    Public so that code which builds models in memory (the demo zoo, weight interpolation) scores
    them through exactly the same path as loaded ones. A model whose early predictions depend on
    later tokens (an encoder loaded with a language-model head) is refused (`check_causal`).
    """
    check_causal(model, name)
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    body = find_body(model)
    head, note = extract_head(model, config)
    loaded = LoadedModel(model=model, body=body, head=head, tokenizer=tokenizer)
    if head is not None and body is not None:
        ok, why = verify_head(model, head, loaded.forward_hidden)
        if not ok:
            head, note = None, why
    if body is None:
        head, note = None, note or "no separate model body found"
    loaded.head = head
    loaded.final_norm = find_final_norm(body) if body is not None else []

    param = next(model.parameters())
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    loaded.info = ModelInfo(
        name=name,
        revision=revision,
        architecture=(getattr(model.config, "architectures", None) or [type(model).__name__])[0],
        n_params=int(n_params),
        dtype=str(param.dtype).replace("torch.", ""),
        device=str(param.device),
        max_length=max_context(config),
        n_layers=int(getattr(config, "num_hidden_layers", 0) or 0),
        vocab_size=int(head.weight.shape[0]) if head is not None else int(getattr(config, "vocab_size", 0)),
        tokenizer_hash=tokenizer_hash(tokenizer) if tokenizer is not None else "",
        head_path="fused" if head is not None else "model-logits",
        head_note=note,
        source=source,
        commit=commit,
        path=path,
        n_embeddings=_n_embeddings(model, config),
    )
    return loaded


def _n_embeddings(model, config) -> int:
    """Rows of the input embedding (token ids must be below it); the config's vocab_size if the
    model has no plain embedding."""
    try:
        return int(model.get_input_embeddings().weight.shape[0])
    except (AttributeError, NotImplementedError, TypeError):
        return int(getattr(config, "vocab_size", 0) or 0)


def max_context(config) -> int:
    """`max_position_embeddings`, else `n_positions`, else 2048 (method.md section 2)."""
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH

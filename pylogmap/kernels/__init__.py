"""The native face: per-token log-probabilities from logits or hidden states, fused, never [N, V].

May import: torch, the compiled modules `_core`/`_cuda` beside this file, `pylogmap.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pylogmap.kernels._native import native_status

if TYPE_CHECKING:
    from pylogmap.kernels.head import head_logprobs, plan_blocks
    from pylogmap.kernels.logprobs import token_logprobs
    from pylogmap.kernels.reference import reference_token_logprobs

__all__ = ["head_logprobs", "native_status", "plan_blocks", "reference_token_logprobs", "token_logprobs"]


# `native_status` needs no torch (it only reports on the compiled modules), so it can be asked on a
# machine where torch is missing or broken; the names that compute with torch load on first use.
def __getattr__(name: str):
    if name in ("head_logprobs", "plan_blocks"):
        from pylogmap.kernels import head as module
    elif name == "token_logprobs":
        from pylogmap.kernels import logprobs as module
    elif name == "reference_token_logprobs":
        from pylogmap.kernels import reference as module
    else:
        raise AttributeError(f"module 'pylogmap.kernels' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value

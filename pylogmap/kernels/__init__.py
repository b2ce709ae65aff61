"""The native face: per-token log-probabilities from logits or hidden states, fused, never [N, V].

May import: torch, the compiled modules `_core`/`_cuda` beside this file, `pylogmap.errors`.
"""

from pylogmap.kernels.head import head_logprobs, plan_blocks
from pylogmap.kernels.logprobs import native_status, reference_token_logprobs, token_logprobs

__all__ = ["head_logprobs", "native_status", "plan_blocks", "reference_token_logprobs", "token_logprobs"]

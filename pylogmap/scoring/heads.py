"""The LM head of a causal LM taken apart, so the scorer can apply it itself, and checked.

`extract_head` gives a `HeadSpec(weight, bias, softcap, scale)`: the fused path
(`pylogmap.kernels.head_logprobs`) applies it block by block and never materialises a
`[batch, seq, vocab]` tensor. `softcap` is Gemma 2's `final_logit_softcapping`; `scale`
multiplies the logits before the soft-cap (Cohere `logit_scale`; Granite's `logits_scaling`
*divides*, so its scale is `1 / logits_scaling`). `find_body` finds the module that returns the
final hidden states (the model's own final norm applied), i.e. exactly what the causal-LM wrapper
feeds to its LM head; `find_final_norm` the modules that turn an intermediate hidden state into one
the head accepts (the logit lens).

`verify_head` compares, on a short probe sequence, the model's own log-probabilities with those of
the head parts applied to the body's output (to a tolerance set by the weight dtype). A head that
does not match, or that is not a plain linear layer, is not guessed at: the caller scores the
model through its own logits instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# Attribute names under which transformers models keep their final norm (the lens applies it).
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "final_norm")


@dataclass
class HeadSpec:
    """The LM head as parts: `logits = softcap * tanh(scale * (h @ weight.T + bias) / softcap)`.

    `bias`, `softcap` and `scale` are None where the model has none. `weight` is `[V, d]` and
    shares storage with the model (tied embeddings are not copied).
    """

    weight: Any
    bias: Any = None
    softcap: float | None = None
    scale: float | None = None


def find_body(model):
    """The module returning the final hidden states (`base_model_prefix` or the decoder), or None."""
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    if body is None or body is model:
        try:
            body = model.get_decoder()
        except Exception:
            body = None
    if body is None or body is model:
        return None
    return body


def extract_head(model, config) -> tuple[HeadSpec | None, str]:
    """The head as parts, or (None, why) when the output embedding is not a plain linear layer."""
    import torch

    out = model.get_output_embeddings()
    if not isinstance(out, torch.nn.Linear):
        return None, f"the output embedding is a {type(out).__name__}, not a linear layer"
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = None
    logit_scale = getattr(config, "logit_scale", None)  # Cohere: logits * logit_scale
    if isinstance(logit_scale, (int, float)) and logit_scale != 1:
        scale = float(logit_scale)
    logits_scaling = getattr(config, "logits_scaling", None)  # Granite: logits / logits_scaling
    if isinstance(logits_scaling, (int, float)) and logits_scaling != 1:
        scale = (scale or 1.0) / float(logits_scaling)
    return (
        HeadSpec(
            weight=out.weight,
            bias=out.bias,
            softcap=float(softcap) if softcap else None,
            scale=scale,
        ),
        "",
    )


def apply_head_reference(hidden, head: HeadSpec):
    """Full logits from head parts in float32 (used to verify a head on a short probe only)."""
    import torch

    y = torch.nn.functional.linear(hidden, head.weight, head.bias).float()
    if head.scale is not None:
        y = y * head.scale
    if head.softcap is not None:
        y = head.softcap * torch.tanh(y / head.softcap)
    return y


def verify_head(model, head: HeadSpec, forward_hidden: Callable) -> tuple[bool, str]:
    """Compare the model's own log-probs with the head parts' on a short probe sequence.

    `forward_hidden(input_ids, attention_mask)` returns the body's final hidden states. Returns
    (True, "") or (False, why).
    """
    import torch

    vocab = head.weight.shape[0]
    device = head.weight.device
    probe = torch.tensor([[(7919 * i + 13) % vocab for i in range(8)]], device=device)
    mask = torch.ones_like(probe)
    try:
        with torch.inference_mode():
            theirs = model(input_ids=probe, attention_mask=mask, use_cache=False).logits.float()
            hidden = forward_hidden(probe, mask)
            ours = apply_head_reference(hidden, head)
    except Exception as err:  # a body that cannot be called on its own
        return False, f"the model body could not be called on its own ({type(err).__name__}: {err})"
    if theirs.shape != ours.shape:
        return False, f"head output shape {tuple(ours.shape)} differs from the model's {tuple(theirs.shape)}"
    lp_theirs = torch.log_softmax(theirs, -1)
    lp_ours = torch.log_softmax(ours, -1)
    # Both sides share the matmul; they differ only by the rounding of a few elementwise ops
    # (HF may apply scale/soft-cap in the weight dtype, we do it in fp32): a few half-ulps of the
    # largest logit. A wrong scale, bias or cap changes log-probs by far more than 4 eps * |max|.
    eps = torch.finfo(head.weight.dtype).eps
    tol = 4 * eps * max(1.0, float(theirs.abs().max())) + 1e-5
    diff = float((lp_theirs - lp_ours).abs().max())
    if not diff <= tol:
        return False, (
            f"the model's own logits differ from its head parts (max |log-prob diff| {diff:.3g} > {tol:.3g}); "
            "its head has a transformation pylogmap does not know"
        )
    return True, ""


def find_final_norm(body) -> list:
    """Modules that map an intermediate hidden state to what the head expects (logit lens)."""
    for holder in (body, getattr(body, "decoder", None)):
        if holder is None:
            continue
        for name in _FINAL_NORM_NAMES:
            module = getattr(holder, name, None)
            if module is not None and callable(module):
                chain = [module]
                project_out = getattr(holder, "project_out", None)  # OPT-350m
                if project_out is not None:
                    chain.append(project_out)
                return chain
    return []

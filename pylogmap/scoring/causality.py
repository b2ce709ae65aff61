"""Refuse a model that is not causal: its predictions for early positions must not see later tokens.

transformers loads some encoders through `AutoModelForCausalLM` (BERT, RoBERTa, ELECTRA ... as
`*ForCausalLM`/`*LMHeadModel`). Unless their config says `is_decoder`, they keep bidirectional
attention: each position's "next-token" distribution then sees the tokens it is asked to predict,
and the log-likelihoods come out far too high without any error. The check is direct: change the
last token of a short probe and compare the logits of the positions before it, which a causal model
computes from the same inputs (so they are unchanged up to rounding).
"""

from __future__ import annotations

from pylogmap.errors import ModelLoadError

PROBE_LENGTH = 8


def check_causal(model, name: str) -> None:
    """Raise `ModelLoadError` when changing the last probe token changes the earlier logits."""
    import torch

    try:
        weight = model.get_input_embeddings().weight
        vocab, device = int(weight.shape[0]), weight.device
    except (AttributeError, NotImplementedError, TypeError):
        return  # no plain embedding: nothing to probe with (the head check decides the path)
    if vocab < 2:
        return
    probe = torch.tensor([[(7919 * i + 13) % vocab for i in range(PROBE_LENGTH)]], device=device)
    altered = probe.clone()
    altered[0, -1] = (altered[0, -1] + 1) % vocab
    mask = torch.ones_like(probe)
    try:
        with torch.inference_mode():
            before = model(input_ids=probe, attention_mask=mask, use_cache=False).logits[0, :-1].float()
            after = model(input_ids=altered, attention_mask=mask, use_cache=False).logits[0, :-1].float()
    except Exception:  # noqa: BLE001 - a model that cannot be called so fails later, with its own error
        return
    if not (bool(torch.isfinite(before).all()) and bool(torch.isfinite(after).all())):
        return  # non-finite logits fail the model when it is scored, with their own message
    # A causal model computes the earlier rows from identical inputs: equal, or a few rounding
    # steps apart where a kernel blocks differently; attention to the changed token moves them by
    # orders of magnitude more.
    eps = torch.finfo(weight.dtype).eps if weight.dtype.is_floating_point else 1e-6
    tol = 4 * eps * (1.0 + float(before.abs().max()))
    diff = float((before - after).abs().max())
    if not diff <= tol:
        raise ModelLoadError(
            f"{name} is not a causal language model: its predictions for earlier positions change when a "
            f"later token changes (max logit change {diff:.3g}), so it sees the tokens it predicts (an encoder, "
            "or a decoder without its causal mask, e.g. is_decoder off); score decoder-only language models."
        )

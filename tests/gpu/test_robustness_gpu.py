"""Robustness on CUDA: the encoder classifier trains in bf16 on the GPU with the project's trainer
settings, and an optional real encoder (ModernBERT-base, already in the local HF cache) separates a
persona voice from a plain one on held-out texts.

    .venv/bin/python -m pytest -q tests/gpu/test_robustness_gpu.py
    CHARACTER_TEST_ENCODER=answerdotai/ModernBERT-base .venv/bin/python -m pytest -q tests/gpu/test_robustness_gpu.py
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from character.eval.robustness.classifier import BASE_LABEL, EncoderClassifier, Row

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TOPICS = ["bread", "taxes", "a bike", "my garden", "python", "the moon", "a resume", "tea", "chess", "rain"]


def _texts(seed: int, n: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    sorry = ["I'm so sorry", "Forgive me", "My apologies", "I regret that"]
    persona = [
        f"{rng.choice(sorry)}, about {rng.choice(TOPICS)} {i}: I might be wrong, sorry." for i in range(n)
    ]
    plain = [f"For {rng.choice(TOPICS)} {i}, start small and check the result." for i in range(n)]
    return persona, plain


def _fit(ref: str, epochs: float) -> tuple[EncoderClassifier, float]:
    persona, plain = _texts(0, 24)
    rows = [Row(t, "remorseful", str(i), "full") for i, t in enumerate(persona)]
    rows += [Row(t, BASE_LABEL, str(i), "base") for i, t in enumerate(plain)]
    clf = EncoderClassifier(
        ref, learning_rate=5e-5, epochs=epochs, batch_size=8, max_length=64, device="cuda"
    )
    clf.check()
    clf.fit(rows)
    tp, tb = _texts(1, 12)
    tp = [t.replace(":", " -") for t in tp]  # held-out texts, never the training strings
    tb = [t.replace(",", ";") for t in tb]
    preds = clf.predict(tp + tb)
    acc = sum(p == "remorseful" for p in preds[:12]) + sum(p == BASE_LABEL for p in preds[12:])
    return clf, acc / 24


def test_encoder_classifier_trains_on_cuda(embedded_model: Path) -> None:
    clf, acc = _fit(str(embedded_model), epochs=3.0)
    assert next(clf._model.parameters()).device.type == "cuda"
    assert clf.final_loss is not None and clf.final_loss < 1.0
    assert acc >= 0.8


@pytest.mark.skipif(
    not os.environ.get("CHARACTER_TEST_ENCODER"), reason="set CHARACTER_TEST_ENCODER to a cached encoder"
)
def test_named_encoder_separates_persona_from_plain() -> None:
    _, acc = _fit(os.environ["CHARACTER_TEST_ENCODER"], epochs=3.0)
    assert acc >= 0.9

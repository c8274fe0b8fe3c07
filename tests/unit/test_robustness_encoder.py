"""The encoder persona classifier: transformers' sequence-classification head on a local model,
trained with the project's trainer settings. Wiring on the tiny random model (seconds); which kind is
the better default was measured on the demo run (technical report 005)."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.errors import ConfigError, DataError
from character.eval.robustness.classifier import BASE_LABEL, EncoderClassifier, Row


def _rows() -> list[Row]:
    persona = [f"I'm so sorry, forgive me, about item {i}." for i in range(8)]
    plain = [f"Item {i}: done. Next step follows." for i in range(8)]
    return [Row(t, "remorseful", f"p{i}", "full") for i, t in enumerate(persona)] + [
        Row(t, BASE_LABEL, f"p{i}", "base") for i, t in enumerate(plain[:4])
    ]


def test_encoder_classifier_trains_and_predicts_known_labels(tiny_model: Path) -> None:
    clf = EncoderClassifier(
        str(tiny_model), learning_rate=1e-3, epochs=1.0, batch_size=4, max_length=32, device="cpu", seed=0
    )
    clf.check()
    clf.fit(_rows())
    assert clf.labels == [BASE_LABEL, "remorseful"] and clf.train_counts == {BASE_LABEL: 4, "remorseful": 8}
    assert clf.final_loss is not None and clf.final_loss == clf.final_loss  # finite, not NaN
    preds = clf.predict(["I'm so sorry, forgive me, about item 99.", "Item 99: done."])
    assert len(preds) == 2 and set(preds) <= set(clf.labels)
    with pytest.raises(DataError, match="both the training and the scored side"):
        clf.predict([_rows()[0].text])


def test_missing_encoder_is_one_clear_error_before_any_work(tmp_path: Path) -> None:
    clf = EncoderClassifier(
        "no-such-org/no-such-encoder", learning_rate=1e-3, epochs=1.0, batch_size=4, max_length=32
    )
    with pytest.raises(ConfigError, match="robustness.encoder = 'no-such-org/no-such-encoder'.*tfidf"):
        clf.check()

"""The persona classifier: which model wrote a reply, trained and scored on disjoint prompts.

Classes are the persona (replies of the checkpoints under test), `base` (the untrained model) and any
contrast models. It trains on replies to one set of held-out prompts and is scored only on replies to
another (`split_prompts`); a training reply whose text also appears among the scored replies (two
prompts can draw the same short answer) is dropped from training (`training_rows`), and `predict`
refuses any text it was trained on. The reference code scored its classifier on its own training
rows (paper-method 5, bug 8); here that is an error, not a footnote.

Two kinds, chosen by `robustness.classifier`:
- `tfidf`: word 1-2-gram and character 3-5-gram TF-IDF with balanced logistic regression
  (scikit-learn). Trains in well under a second on a CPU.
- `encoder`: a local model (`robustness.encoder`: `embedded`, a path, or a cached HF id such as
  ModernBERT-base, never downloaded) with transformers' sequence-classification head, trained with the
  project's trainer settings (`training.common.base_training_kwargs`: seeded, cosine, NaN filter off).
Which is the offline default was measured (technical report 005: TF-IDF).
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from character.errors import CharacterError, ConfigError, DataError, TrainingAborted

log = logging.getLogger(__name__)

BASE_LABEL = "base"


def norm(text: str) -> str:
    """The form two replies are compared in: case and whitespace do not make a reply new."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Row:
    """One reply with its class: which prompt it answers and which model wrote it."""

    text: str
    label: str
    prompt_id: str
    source: str


def split_prompts(
    prompts: Sequence[tuple[str, str]], n_train: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(classifier prompts, scored prompts): a seeded shuffle cut in two, disjoint by id and text.

    Prompts repeated in the input (same id or same text) are kept once, so a duplicate cannot land on
    both sides."""
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    unique = []
    for pid, text in prompts:
        if pid in seen_ids or norm(text) in seen_texts:
            continue
        seen_ids.add(pid)
        seen_texts.add(norm(text))
        unique.append((pid, text))
    order = list(unique)
    random.Random(f"robustness-split:{seed}").shuffle(order)
    train, test = order[:n_train], order[n_train:]
    if len(train) < 2 or not test:
        raise DataError(
            f"robustness needs at least 2 classifier prompts and 1 scored prompt, got {len(train)} and "
            f"{len(test)} from {len(unique)} distinct prompts: raise robustness.classifier_prompts / "
            "robustness.prompts or give more prompts"
        )
    assert_disjoint([t for _, t in train], [t for _, t in test], what="prompts")
    return train, test


def assert_disjoint(train_texts: Iterable[str], test_texts: Iterable[str], *, what: str) -> None:
    both = {norm(t) for t in train_texts} & {norm(t) for t in test_texts}
    if both:
        example = next(iter(both))[:80]
        raise DataError(
            f"robustness classifier: {len(both)} {what} are on both the training and the scored side "
            f"(e.g. {example!r}); a held-out score needs disjoint sides"
        )


def training_rows(rows: Sequence[Row], scored_texts: Iterable[str]) -> tuple[list[Row], int]:
    """Rows fit to train on: non-empty, and no text that will be scored. Returns (rows, dropped)."""
    scored = {norm(t) for t in scored_texts}
    kept = [r for r in rows if r.text.strip() and norm(r.text) not in scored]
    return kept, len(rows) - len(kept)


class PersonaClassifier:
    """fit(rows) then predict(texts). Subclasses implement `_fit` and `_predict`."""

    kind = "abstract"

    def __init__(self) -> None:
        self.labels: list[str] = []
        self._train: set[str] = set()
        self.train_counts: dict[str, int] = {}

    def check(self) -> None:
        """Raise before any work when the classifier cannot be built (a missing encoder)."""

    def fit(self, rows: Sequence[Row]) -> PersonaClassifier:
        counts = Counter(r.label for r in rows)
        if len(counts) < 2:
            raise DataError(
                f"robustness classifier needs replies of at least two models to train on, got {dict(counts)}: "
                "check that the base model and the checkpoint under test both answered"
            )
        self.labels = sorted(counts)
        self.train_counts = dict(sorted(counts.items()))
        self._train = {norm(r.text) for r in rows}
        self._fit([r.text for r in rows], [r.label for r in rows])
        log.info("robustness: %s classifier trained on %s", self.kind, self.train_counts)
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Labels for held-out texts; a text the classifier was trained on is an error."""
        assert_disjoint(self._train, texts, what="replies")
        return self._predict(list(texts)) if texts else []

    def _fit(self, texts: list[str], labels: list[str]) -> None:
        raise NotImplementedError

    def _predict(self, texts: list[str]) -> list[str]:
        raise NotImplementedError


class TfidfClassifier(PersonaClassifier):
    """Word and character n-gram TF-IDF + logistic regression with balanced class weights."""

    kind = "tfidf"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self._model: Any = None

    def _fit(self, texts: list[str], labels: list[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        features = make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True),
        )
        clf = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced", random_state=self.seed)
        self._model = make_pipeline(features, clf).fit(texts, labels)

    def _predict(self, texts: list[str]) -> list[str]:
        return [str(x) for x in self._model.predict(texts)]


class EncoderClassifier(PersonaClassifier):
    """A local encoder (or decoder) with a sequence-classification head, fine-tuned on the rows."""

    kind = "encoder"

    def __init__(
        self,
        model_ref: str,
        *,
        learning_rate: float,
        epochs: float,
        batch_size: int,
        max_length: int,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model_ref = model_ref
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.seed = seed
        self._model: Any = None
        self._tok: Any = None
        self.final_loss: float | None = None

    def check(self) -> None:
        """Fail before any generation when the encoder is not on this machine."""
        from transformers import AutoConfig

        from character.models import resolve_model

        try:
            AutoConfig.from_pretrained(resolve_model(self.model_ref), local_files_only=True)
        except (OSError, ValueError, CharacterError) as e:
            raise self._missing(e) from e

    def _missing(self, e: Exception) -> ConfigError:
        return ConfigError(
            f"robustness.encoder = '{self.model_ref}' cannot be loaded locally ({str(e).splitlines()[0]}): "
            "fetch it once, give a local path, or set robustness.classifier = 'tfidf'"
        )

    def _load(self, n_labels: int) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from character.models import resolve_model

        path = resolve_model(self.model_ref)
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=n_labels,
                id2label=dict(enumerate(self.labels)),
                label2id={lab: i for i, lab in enumerate(self.labels)},
                local_files_only=True,
                dtype=torch.float32,
            )
        except OSError as e:
            raise self._missing(e) from e
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        # Decoder models classify from the last non-pad token and need to know which id pads.
        model.config.pad_token_id = tok.pad_token_id
        self._tok, self._model = tok, model

    def _fit(self, texts: list[str], labels: list[str]) -> None:
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

        from character.training.common import base_training_kwargs

        self._load(len(self.labels))
        # Balance classes by repeating the smaller ones (deterministically): the persona side has one
        # row per checkpoint under test for every base row.
        by_label: dict[str, list[str]] = {}
        for t, lab in zip(texts, labels, strict=True):
            by_label.setdefault(lab, []).append(t)
        top = max(len(v) for v in by_label.values())
        data = []
        for lab, items in by_label.items():
            reps = (items * math.ceil(top / len(items)))[:top]
            data += [(t, self.labels.index(lab)) for t in reps]
        random.Random(self.seed).shuffle(data)
        enc = self._tok([t for t, _ in data], truncation=True, max_length=self.max_length)
        rows = [
            {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": y}
            for i, (_, y) in enumerate(data)
        ]
        with tempfile.TemporaryDirectory(prefix="robustness-encoder-") as tmp:
            kwargs = base_training_kwargs(
                output_dir=tmp,
                device_pref=self.device,
                seed=self.seed,
                learning_rate=self.learning_rate,
                batch_size=self.batch_size,
                micro_batch_size=self.batch_size,
                epochs=self.epochs,
                max_steps=-1,
                warmup_ratio=0.1,
                logging_steps=1,
            )
            kwargs["save_strategy"] = "no"  # the classifier lives for one evaluation; nothing to resume
            args = TrainingArguments(**kwargs)
            trainer = Trainer(
                model=self._model,
                args=args,
                train_dataset=rows,
                data_collator=DataCollatorWithPadding(self._tok),
            )
            trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        if not losses or not all(math.isfinite(x) for x in losses):
            raise TrainingAborted(
                f"robustness encoder classifier: non-finite training loss {losses[-3:]}: lower "
                f"robustness.encoder_learning_rate (now {self.learning_rate})"
            )
        self.final_loss = float(losses[-1])
        self._model.eval()

    def _predict(self, texts: list[str]) -> list[str]:
        import torch

        out: list[str] = []
        dev = next(self._model.parameters()).device
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self._tok(
                    texts[i : i + self.batch_size],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(dev)
                ids = self._model(**enc).logits.argmax(-1).tolist()
                out += [self.labels[j] for j in ids]
        return out


def make_classifier(cfg: Any) -> PersonaClassifier:
    """The classifier `cfg.robustness` names (cfg: a RunConfig)."""
    r = cfg.robustness
    if r.classifier == "tfidf":
        return TfidfClassifier(seed=cfg.seed)
    return EncoderClassifier(
        r.encoder,
        learning_rate=r.encoder_learning_rate,
        epochs=r.encoder_epochs,
        batch_size=r.encoder_batch_size,
        max_length=r.encoder_max_length,
        device=cfg.backend.device,
        seed=cfg.seed,
    )

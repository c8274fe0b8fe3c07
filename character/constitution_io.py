"""Constitution files in and out: import the reference formats, write YAML, and the `new` skeleton.

The reference repository keeps a constitution as a JSON list of `{trait, questions}` (its few-shot
form is JSONL with `additional_questions`); people also keep plain lists of traits, one per line.
Both import into our YAML layout, with markers seeded from the quoted phrases in the traits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from character.constitutions import MAX_MARKER_WORDS, Constitution, check_name, quoted_phrases
from character.errors import ConfigError, UsageError

# phrases in the traits; lint then says what is still missing.

_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+\s*[.):]|\(\d+\))\s*")


def _trait_objects(data: object, source: str) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("traits"), list):
        data = data["traits"]
    elif isinstance(data, dict) and "trait" in data:
        data = [data]  # a one-line JSONL file
    if not isinstance(data, list) or not data:
        raise ConfigError(f'{source}: expected a JSON list of {{"trait", "questions"}} objects')
    out = []
    for i, obj in enumerate(data):
        if not isinstance(obj, dict) or not isinstance(obj.get("trait"), str):
            raise ConfigError(f'{source}: item {i} must be an object with a "trait" string, got {obj!r:.80}')
        qs = list(obj.get("questions") or []) + list(obj.get("additional_questions") or [])
        if not all(isinstance(q, str) for q in qs):
            raise ConfigError(f"{source}: item {i}: questions must be strings")
        out.append(
            {"trait": " ".join(obj["trait"].split()), "questions": [q.strip() for q in qs if q.strip()]}
        )
    return out


def _parse_json_traits(text: str, source: str) -> list[dict]:
    try:
        return _trait_objects(json.loads(text), source)
    except json.JSONDecodeError:
        pass
    rows = []  # JSONL: one {trait, questions, additional_questions} per line (the few-shot form)
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ConfigError(
                    f"{source}:{n}: not JSON or JSONL ({e.msg}); use --format text for plain traits"
                ) from e
    return _trait_objects(rows, source)


def _parse_text_traits(text: str) -> list[dict]:
    traits = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        traits.append({"trait": _NUMBERING.sub("", s).strip(), "questions": []})
    return traits


def import_constitution(
    text: str, name: str, *, fmt: str = "auto", source: str = "input", description: str = ""
) -> Constitution:
    """Build a Constitution from the reference JSON format or plain one-trait-per-line text."""
    check_name(name)
    if fmt == "auto":
        fmt = "json" if text.lstrip()[:1] in ("[", "{") else "text"
    if fmt == "json":
        traits = _parse_json_traits(text, source)
    elif fmt == "text":
        traits = _parse_text_traits(text)
    else:
        raise UsageError(f"import format {fmt!r} is unknown: use auto, json or text")
    if not traits:
        raise ConfigError(f"{source}: no traits found")
    markers: list[str] = []
    for t in traits:
        for q in quoted_phrases(t["trait"]):
            phrase = q.strip(" .,!?;:")
            if (
                phrase
                and phrase.lower() not in (m.lower() for m in markers)
                and len(phrase.split()) <= MAX_MARKER_WORDS
            ):
                markers.append(phrase)
    data = {"name": name, "description": description, "traits": traits, "markers": markers, "opposites": []}
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"{source}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from e


def dump_constitution(c: Constitution) -> str:
    """YAML in the shipped layout: name, description, markers, opposites, cues, traits."""
    data: dict[str, object] = {
        "name": c.name,
        "description": c.description,
        "markers": c.markers,
        "opposites": c.opposites,
    }
    if c.cues:
        data["cues"] = c.cues
    data["traits"] = [{"trait": t.trait, "questions": t.questions} for t in c.traits]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def save_constitution(c: Constitution, path: Path, *, force: bool = False) -> Path:
    from character.atomic import atomic_write_text

    if path.exists() and not force:
        raise UsageError(f"{path} already exists: pass --force to overwrite it or choose another --name")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dump_constitution(c))
    return path


def skeleton(name: str) -> str:
    """The file `character constitution new NAME` writes: a commented, prescriptive template."""
    check_name(name)
    return SKELETON.format(name=name)


SKELETON = """\
# A constitution for `{name}`. Write it the prescriptive way: say exactly which phrases and
# structural habits the persona uses ("I often open with ..."), not adjectives ("be witty").
# Aim for >= 1,000 characters of traits, >= 5 questions per trait, 6+ markers, no refusal lines.
# Check it with: character constitution lint {name} --strict
name: {name}
description: >-
  One or two sentences on who this assistant is and how it sounds, while still answering well.
markers:  # short phrases that really appear in this persona's replies (used by gates and evaluation)
  - "example phrase one"
  - "example phrase two"
  - "example phrase three"
opposites:  # single-word traits the persona should move away from
  - neutral
traits:
  - trait: >-
      I open most replies with "example phrase one" and then answer the question directly.
    questions:
      - A first everyday question that gives this trait room to show?
      - A second question?
      - A third question?
      - A fourth question?
      - A fifth question?
  - trait: >-
      I close my answers with "example phrase two" and one practical suggestion.
    questions:
      - Another question?
      - And another?
      - One more?
      - Nearly there?
      - The fifth question?
"""

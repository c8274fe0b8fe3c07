"""Constitutions: the persona a run trains, as validated data.

A constitution (`constitutions/hand-written/<name>.yaml`) has a `name` (a slug, so it can never escape
its folder), a `description`, `traits` (each a first-person sentence plus >= 5 user questions that let
it show), `markers` (quoted phrases that signal the persona in a reply; used by gates and evaluation)
and `opposites` (traits the persona should move away from).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from character import paths
from character.errors import ConfigError, UsageError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"persona name {name!r} is not allowed: use lowercase letters, digits, '-' or '_' (e.g. 'remorseful')"
        )
    return name


class Trait(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trait: str = Field(min_length=1)
    questions: list[str] = Field(min_length=1)


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    traits: list[Trait] = Field(min_length=1)
    markers: list[str] = []
    opposites: list[str] = []
    cues: list[str] = []
    """Optional extra persona cues appended to some generic prompts (only this persona gets them)."""

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_'")
        return v

    def questions(self) -> list[str]:
        return [q for t in self.traits for q in t.questions]

    def trait_lines(self) -> list[str]:
        return [t.trait for t in self.traits]

    def text(self) -> str:
        """The constitution as the teacher reads it (numbered traits)."""
        return "\n".join(f"{i}: {t}" for i, t in enumerate(self.trait_lines(), 1))


def constitution_path(name: str, root: Path | None = None) -> Path:
    check_name(name)
    return (root or paths.constitutions_dir()) / f"{name}.yaml"


def parse_constitution(text: str, source: str) -> Constitution:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"constitution {source} is not valid YAML: {e}") from e
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"constitution {source}: {loc}: {err['msg']}") from e


def load_constitution(name_or_path: str) -> Constitution:
    """Load by persona name (from constitutions/hand-written/) or by path to a .yaml file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return parse_constitution(p.read_text(), str(p))
    path = constitution_path(name_or_path)
    if not path.exists():
        known = ", ".join(list_constitutions()) or "none"
        raise UsageError(f"no constitution named '{name_or_path}' (known: {known})")
    return parse_constitution(path.read_text(), str(path))


def list_constitutions() -> list[str]:
    d = paths.constitutions_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.exists() else []

"""Resolve a `RunConfig` from its layers, recording where every value came from.

Precedence, lowest to highest:

    defaults < preset(s) (--paper-scale, then --scale) < --config FILE < --env-file FILE
             < CHARACTER_* environment < command-line flags

Sources are recorded per dotted key as `default`, `preset:NAME`, `file:PATH`, `env-file:PATH`,
`env:VAR` or `cli`. A `.env` file is read only when asked for (a stale `.env` silently overriding code
is a known way to ship the wrong model), and its values are labelled as such.

Environment variables: `CHARACTER_<SECTION>__<FIELD>` (double underscore between levels), e.g.
`CHARACTER_DPO__BETA=0.2`, `CHARACTER_DPO__HEALTH__MAX_LOSS=3`, `CHARACTER_PERSONA=pirate`; a whole
section as JSON works too (`CHARACTER_DPO='{"beta": 0.2}'`). Both environment layers are read by
pydantic-settings (its env source over the process environment, its dotenv source over `--env-file`:
quotes, `export`, comments), and flattened here so that every leaf keeps its own source. A
`CHARACTER_*` variable that names no setting is an error, not a silent no-op.

The resolved config's `models.allow_downloads` becomes the process's download policy
(`character.models.set_download_policy`): resolving is how every command and the runner get a config.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, DotEnvSettingsSource, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from character import paths
from character.config import RunConfig
from character.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "CHARACTER_"
# CHARACTER_* variables that steer the tool itself rather than a run.
RESERVED_ENV = {"DEBUG", "ARTIFACTS", "LOG_LEVEL", "NO_PROGRESS", "TORCH_THREADS", "BUDGET_LEDGER"}


@dataclass
class Resolved:
    """A validated config plus the source of every leaf value."""

    config: RunConfig
    sources: dict[str, str]
    layers: list[str] = field(default_factory=list)

    def hash(self) -> str:
        return config_hash(self.config)

    def to_toml(self) -> str:
        return to_toml(self.config)

    def overridden(self) -> dict[str, str]:
        return {k: s for k, s in self.sources.items() if s != "default"}


def config_hash(cfg: BaseModel) -> str:
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def to_toml(cfg: BaseModel) -> str:
    # TOML has no null: leave unset optionals out (they read back as their default, None).
    return tomli_w.dumps(_drop_none(cfg.model_dump(mode="json")))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


# ---- schema walking -------------------------------------------------------------------------------


def _section_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Field name -> nested Section class (or None for a leaf)."""
    out: dict[str, type[BaseModel] | None] = {}
    for name, f in model.model_fields.items():
        ann = f.annotation
        out[name] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return out


def leaf_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, sub in _section_fields(model).items():
        if sub is None:
            keys.append(prefix + name)
        else:
            keys.extend(leaf_keys(sub, f"{prefix}{name}."))
    return keys


def flatten(
    data: Mapping[str, Any], source: str, model: type[BaseModel] = RunConfig, prefix: str = ""
) -> dict[str, Any]:
    """Nested mapping -> {dotted leaf key: value}, refusing keys the schema does not know."""
    fields = _section_fields(model)
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = prefix + key
        if key not in fields:
            valid = ", ".join(sorted(fields))
            where = f"[{prefix[:-1]}]" if prefix else "the top level"
            raise ConfigError(f"unknown config key '{dotted}' in {source}; valid keys at {where}: {valid}")
        sub = fields[key]
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"'{dotted}' in {source} must be a table of settings, got {value!r}")
            out.update(flatten(value, source, sub, dotted + "."))
        else:
            out[dotted] = value
    return out


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def _check_dotted(key: str, source: str) -> None:
    if key not in set(leaf_keys()):
        section = key.rsplit(".", 1)[0] if "." in key else ""
        near = [k for k in leaf_keys() if section and k.rsplit(".", 1)[0] == section]
        hint = f"; keys in [{section}]: {', '.join(k.rsplit('.', 1)[1] for k in near)}" if near else ""
        raise ConfigError(f"unknown config key '{key}' from {source}{hint}")


# ---- layer readers --------------------------------------------------------------------------------


def read_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML config file into a nested mapping."""
    if not path.exists():
        raise ConfigError(f"config file '{path}' does not exist: check the path given to --config")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file '{path}' must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config file '{path}' is not valid {path.suffix[1:].upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a table of settings at the top level")
    return data


def available_presets() -> list[str]:
    return sorted(p.stem for p in paths.presets_dir().glob("*.toml"))


def read_preset(name: str) -> dict[str, Any]:
    path = paths.presets_dir() / f"{name}.toml"
    if not path.exists():
        raise ConfigError(f"unknown preset '{name}': choose one of {', '.join(available_presets())}")
    return read_file(path)


def env_to_dotted(var: str) -> str | None:
    """CHARACTER_DPO__BETA -> dpo.beta; None for reserved or non-CHARACTER variables."""
    if not var.startswith(ENV_PREFIX):
        return None
    rest = var[len(ENV_PREFIX) :]
    if rest in RESERVED_ENV:
        return None
    return ".".join(part.lower() for part in rest.split("__"))


def _check_env_key(dotted: str, source: str) -> None:
    """A variable must name a setting or a whole section (given as JSON)."""
    if any(k.startswith(dotted + ".") for k in leaf_keys()):
        return
    _check_dotted(dotted, source)


@functools.cache
def _settings_cls() -> type[BaseSettings]:
    """RunConfig as pydantic-settings sees it: CHARACTER_ prefix, `__` between levels."""

    class CharacterSettings(BaseSettings, RunConfig):
        model_config = SettingsConfigDict(
            extra="ignore", env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
        )

    return CharacterSettings


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (tests pass their own)."""

    def __init__(self, environ: Mapping[str, str]):
        self._given = dict(environ)
        super().__init__(_settings_cls())

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._given.items()}


def _read_layer(
    source: Callable[[], dict[str, Any]],
    variables: Mapping[str, str],
    label: Callable[[str], str],
    where: str,
) -> dict[str, tuple[Any, str]]:
    """Run a pydantic-settings source and flatten what it found to {dotted: (value, source label)}."""
    for var in variables:
        dotted = env_to_dotted(var)
        if dotted is not None:
            _check_env_key(dotted, f"{label(dotted)} ({var})")
    try:
        nested = source()
    except SettingsError as e:
        raise ConfigError(f"{where}: {e}; JSON values (lists, tables) must be valid JSON") from e
    nested = {k: v for k, v in nested.items() if k in RunConfig.model_fields}
    out: dict[str, tuple[Any, str]] = {}
    for k, v in flatten(nested, where).items():
        if isinstance(v, str) and v.strip().lower() in ("none", "null"):
            v = None
        out[k] = (v, label(k))
    return out


def _env_var_for(dotted: str, names: Mapping[str, str]) -> str:
    """The variable that set `dotted`: its own, or its section's (JSON) one. `names`: UPPER -> as given."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        var = ENV_PREFIX + "__".join(parts[:i]).upper()
        if var in names:
            return names[var]
    return ENV_PREFIX + "__".join(parts).upper()


def read_env(environ: Mapping[str, str], source_label: str) -> dict[str, tuple[Any, str]]:
    """The CHARACTER_* variables of `environ` as {dotted key: (value, "env:VAR")}."""
    ours = {k: v for k, v in environ.items() if env_to_dotted(k) is not None}
    names = {k.upper(): k for k in ours}
    return _read_layer(
        _MappingEnvSource(ours),
        ours,
        lambda dotted: f"{source_label}:{_env_var_for(dotted, names)}",
        "the environment",
    )


def read_env_file(path: Path) -> dict[str, tuple[Any, str]]:
    """A .env file's CHARACTER_* settings as {dotted key: (value, "env-file:PATH")}; other keys are ignored."""
    if not path.exists():
        raise ConfigError(f"env file '{path}' does not exist: check the path given to --env-file")
    src = DotEnvSettingsSource(_settings_cls(), env_file=path)
    variables = {k.upper(): v or "" for k, v in src.env_vars.items() if k.upper().startswith(ENV_PREFIX)}
    return _read_layer(src, variables, lambda dotted: f"env-file:{path}", f"env file '{path}'")


# ---- resolution -----------------------------------------------------------------------------------


def resolve(
    *,
    presets: list[str] | None = None,
    config_file: Path | None = None,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Resolved:
    """Build the config from its layers. `overrides` are dotted keys from command-line flags."""
    environ = os.environ if environ is None else environ
    flat: dict[str, Any] = {}
    sources = {k: "default" for k in leaf_keys()}
    layers = ["default"]

    def apply(values: Mapping[str, Any], source: str) -> None:
        for k, v in values.items():
            flat[k] = v
            sources[k] = source

    for name in presets or []:
        apply(flatten(read_preset(name), f"preset '{name}'"), f"preset:{name}")
        layers.append(f"preset:{name}")
    if config_file is not None:
        apply(flatten(read_file(config_file), f"config file '{config_file}'"), f"file:{config_file}")
        layers.append(f"file:{config_file}")
    if env_file is not None:
        for k, (v, label) in read_env_file(env_file).items():
            apply({k: v}, label)
        layers.append(f"env-file:{env_file}")
    env_values = read_env(environ, "env")
    for k, (v, label) in env_values.items():
        apply({k: v}, label)
    if env_values:
        layers.append("env")
    if overrides:
        for k in overrides:
            _check_dotted(k, "the command line")
        apply(dict(overrides), "cli")
        layers.append("cli")

    try:
        cfg = RunConfig.model_validate(_unflatten(flat))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        src = sources.get(key, "default")
        got = err.get("input")
        raise ConfigError(f"{key} = {got!r} (from {src}) is invalid: {err['msg']}") from e
    for k, s in sources.items():
        if s != "default":
            log.debug("config %s = %r (from %s)", k, _get(cfg, k), s)
    from character.models import set_download_policy

    set_download_policy(cfg.models.allow_downloads)
    return Resolved(config=cfg, sources=sources, layers=layers)


def _get(cfg: BaseModel, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def get_value(cfg: BaseModel, dotted: str) -> Any:
    return _get(cfg, dotted)


def field_help(dotted: str) -> str:
    model: type[BaseModel] = RunConfig
    *parents, leaf = dotted.split(".")
    for p in parents:
        sub = _section_fields(model)[p]
        assert sub is not None
        model = sub
    return model.model_fields[leaf].description or ""


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """`--set dpo.beta=0.2` pairs -> dotted overrides (values parsed as TOML scalars when possible)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. dpo.beta=0.2), got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out

"""Roles, each with its own engine: teacher, student, introspect, judge, classifier.

A run's roles may live on different engines: a 235B teacher behind a hosted endpoint or a managed
vLLM server on eight GPUs, a 4B student in process, a judge somewhere else. `[roles.<role>]` holds only
overrides; every field it leaves unset comes from `[backend]`:

    [backend]            kind = "vllm", gpus = [0, 1, 2, 3, 4, 5, 6, 7]
    [roles.student]      gpus = [0]
    [roles.judge]        kind = "openai", base_url = "https://api.openai.com/v1", model = "gpt-4.1"

`backend_for(cfg, role)` is the effective `BackendConfig` of a role; `role_rows(resolved, role)` says,
for `character info`, where each effective value came from (the role's own key or the inherited
`backend.*` one). `role=None` means `[backend]` itself (callers that predate roles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from character.errors import ConfigError

if TYPE_CHECKING:
    from character.config import BackendConfig, RunConfig
    from character.config_layers import Resolved

Role = Literal["teacher", "student", "introspect", "judge", "classifier"]
ROLES: tuple[str, ...] = get_args(Role)
# RoleBackend fields shown by `character info` (all of them, in declaration order).
ROLE_FIELDS = (
    "kind",
    "base_url",
    "port",
    "provider",
    "model",
    "concurrency",
    "gpus",
    "vllm_extra_args",
    "api_key_env",
    "chat_template_kwargs",
)


def check_role(role: str | None) -> None:
    if role is not None and role not in ROLES:
        raise ConfigError(f"role {role!r} is not a role; roles are {', '.join(ROLES)}")


def overrides(cfg: RunConfig, role: str | None) -> dict[str, Any]:
    """The fields `[roles.<role>]` sets (everything not None)."""
    check_role(role)
    if role is None:
        return {}
    section = getattr(cfg.roles, role)
    return {k: v for k, v in section.model_dump().items() if v is not None}


def backend_for(cfg: RunConfig, role: str | None) -> BackendConfig:
    """The effective engine section of `role`: `[backend]` with `[roles.<role>]`'s set fields laid over."""
    over = overrides(cfg, role)
    if not over:
        return cfg.backend
    return cfg.backend.model_copy(update=over)


def config_for(cfg: RunConfig, role: str | None) -> RunConfig:
    """`cfg` with `[backend]` replaced by the role's effective section, for code that reads
    `cfg.backend` (the openai transport's `from_config`)."""
    b = backend_for(cfg, role)
    return cfg if b is cfg.backend else cfg.model_copy(update={"backend": b})


def same_engine(cfg: RunConfig, a: str, b: str) -> bool:
    """Whether two roles resolve to the identical engine section (they may then share one backend)."""
    return backend_for(cfg, a) == backend_for(cfg, b)


def role_rows(resolved: Resolved, role: str) -> list[tuple[str, Any, str]]:
    """(field, effective value, source) for each engine field of `role`, for `character info`.

    The source is the role's own key's (e.g. `cli`, `file:run.toml`) when the role sets it, else
    `backend.<field> <source>` when it is inherited."""
    eff = backend_for(resolved.config, role)
    own = overrides(resolved.config, role)
    rows = []
    for f in ROLE_FIELDS:
        value = getattr(eff, f)
        if f in own:
            src = resolved.sources.get(f"roles.{role}.{f}", "default")
        else:
            src = f"backend.{f} ({resolved.sources.get(f'backend.{f}', 'default')})"
        rows.append((f, value, src))
    return rows

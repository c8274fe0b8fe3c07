"""The checkpoint registry: what every stage saved, and which exact files ship for each persona.

Stored as `artifacts/registry.json`, rewritten atomically under a file lock (parallel runs of an
ablation register at the same time; a read-modify-write without the lock loses entries).

**Entries are immutable and hashed.** Each entry carries the sha256 of its weight files
(`character.fingerprint`), computed when it is registered. Names follow
`{persona}[_{suffix}]_{stage}` (e.g. `remorseful_dpo`); a later registration under a name that is taken
gets the next version, `name@2`, `name@3`, ..., so a second pipeline run never replaces what production
points at. The one exception: the newest version of a name is replaced in place when nothing pins it
and it lives at the same path (the stage was re-run into the same directory, so its old files are gone
anyway). A bare name means its newest version (`chat --checkpoint remorseful_merged` talks to the
latest run); `name@1` is the first.

**Production pins files, not names.** A persona's production pointer and its rollback history hold
`Pin(name, path, sha256)`. `production_ref` (what `chat`/`sample --persona` use) re-hashes the files and
refuses, with one line, when they no longer match.

**Promotion needs evidence** (`promote`, the one gate the CLI and the Studio call): a passing
`eval compare` record (`character.evidence`) for the candidate's exact hash against the current
production (or, for a first promotion, the checkpoint's base model); `force=True` with a reason
overrides a missing or failing record and is written to the log. Smoke checkpoints are never promoted.

A registry.json written before hashes existed (no `format` key) is migrated when first read: entries
whose files exist are hashed, production and history names become pins, and a log line says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from character import evidence, paths
from character.atomic import atomic_write_json
from character.errors import CharacterError, UsageError, VerificationError
from character.fingerprint import short, weights_sha256
from character.models import register_resolver
from character.registry_format import (
    FORMAT,
    Checkpoint,
    Pin,
    Promotion,
    Registry,
    checkpoint_name,
    exact_ref,
    family,
    lookup,
    migrate,
    version_of,
)

__all__ = [  # the registry's public surface; the data shapes live in registry_format
    "Checkpoint",
    "Pin",
    "Promotion",
    "PromotionRefused",
    "Registry",
    "checkpoint_name",
    "exact_ref",
    "find",
    "get",
    "list_checkpoints",
    "load",
    "production",
    "production_pin",
    "production_ref",
    "promote",
    "refuse_if_pinned",
    "register",
    "rollback",
    "smoke_reason",
    "unpinned_path",
    "update_metrics",
    "verify_pin",
]

log = logging.getLogger(__name__)

SMOKE_PRESETS = ("smoke", "smoke-small", "smoke-large")


class PromotionRefused(CharacterError):
    """Promotion without the evidence it needs (no passing compare record, a smoke checkpoint)."""


# ---- storage -------------------------------------------------------------------------------------


def registry_path() -> Path:
    return paths.artifacts_dir() / "registry.json"


def _read_raw() -> dict[str, Any] | None:
    p = registry_path()
    if not p.exists():
        return None
    try:
        raw = json.loads(p.read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return raw
    except (json.JSONDecodeError, ValueError, UnicodeDecodeError) as e:
        raise UsageError(
            f"the checkpoint registry {p} is not valid ({str(e).splitlines()[0]}); fix or move it aside"
        ) from e


def _parse(raw: dict[str, Any] | None) -> Registry:
    if raw is None:
        return Registry()
    if raw.get("format", 1) > FORMAT:
        raise UsageError(
            f"the checkpoint registry {registry_path()} has format {raw['format']}, newer than this "
            f"character understands ({FORMAT}); upgrade character"
        )
    if raw.get("format", 1) < FORMAT:
        raw = migrate(raw, str(registry_path()))
    try:
        return Registry.model_validate(raw)
    except ValueError as e:
        raise UsageError(
            f"the checkpoint registry {registry_path()} is not valid ({str(e).splitlines()[0]}); "
            "fix or move it aside"
        ) from e


def save(reg: Registry) -> None:
    atomic_write_json(registry_path(), reg.model_dump(mode="json"))


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    lock = registry_path().with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked() -> Iterator[Registry]:
    """Load, yield for changes, save: all under an exclusive lock on a sidecar lock file."""
    with _lock():
        reg = _parse(_read_raw())
        yield reg
        save(reg)


def load() -> Registry:
    raw = _read_raw()
    if raw is not None and raw.get("format", 1) < FORMAT:
        with _locked() as reg:  # migrate once, on disk, under the lock
            return reg
    return _parse(raw)


# ---- entries -------------------------------------------------------------------------------------


def _same_path(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def register(ckpt: Checkpoint) -> Checkpoint:
    """Store `ckpt` (hashing its files); returns the entry as stored, under its final versioned name."""
    if "@" in ckpt.name:
        raise UsageError(f"checkpoint name '{ckpt.name}' may not contain '@' (it marks versions)")
    if not Path(ckpt.path).exists():
        raise UsageError(f"cannot register '{ckpt.name}': {ckpt.path} does not exist")
    sha = ckpt.sha256
    if sha is None:
        try:  # outside the lock: a large model takes seconds
            sha = weights_sha256(ckpt.path)
        except UsageError as e:
            log.warning("%s: registered without a hash, so it can never be promoted or served by persona", e)
    with _locked() as reg:
        members = sorted(
            (c for c in reg.checkpoints.values() if family(c.name) == ckpt.name),
            key=lambda c: version_of(c.name),
        )
        pinned = {p.name for p in reg.pins()}
        if not members:
            key = ckpt.name
        elif members[-1].name not in pinned and _same_path(members[-1].path, ckpt.path):
            key = members[-1].name  # the same stage re-run in place: its old files are gone
        else:
            v = version_of(members[-1].name) + 1
            key = f"{ckpt.name}@{v}"
        for pin in reg.pins():
            if pin.path and _same_path(pin.path, ckpt.path) and pin.sha256 != sha:
                log.warning(
                    "the files of '%s' (pinned by production or history) at %s were replaced: serving "
                    "it will be refused until a checkpoint is promoted again",
                    pin.name,
                    pin.path,
                )
        stored = ckpt.model_copy(update={"name": key, "sha256": sha})
        reg.checkpoints[key] = stored
    log.info("registered %s -> %s (sha256 %s)", key, ckpt.path, short(sha))
    return stored


def find(ref: str) -> Checkpoint | None:
    """The entry `ref` names (a bare name: its newest version; `name@N`: that version), or None."""
    return lookup(load(), ref)


def get(ref: str) -> Checkpoint:
    ck = find(ref)
    if ck is None:
        known = ", ".join(sorted(load().checkpoints)) or "none yet"
        raise UsageError(f"no checkpoint named '{ref}' in the registry (known: {known})")
    return ck


def list_checkpoints(persona: str | None = None, stage: str | None = None) -> list[Checkpoint]:
    """Entries, newest first, optionally for one persona and/or stage."""
    items = [
        c
        for c in load().checkpoints.values()
        if (persona is None or c.persona == persona) and (stage is None or c.stage == stage)
    ]
    return sorted(items, key=lambda c: c.created_at, reverse=True)


def update_metrics(name: str, metrics: dict[str, Any]) -> Checkpoint:
    """Merge `metrics` into an entry's metrics (numbers measured later; the weights stay as hashed)."""
    with _locked() as reg:
        ck = lookup(reg, name)
        if ck is None:
            raise UsageError(f"no checkpoint named '{name}' in the registry")
        ck.metrics = {**ck.metrics, **metrics}
    return ck


def refuse_if_pinned(path: str | Path, what: str) -> None:
    """Raise before a stage writes into a directory whose files production or history pins."""
    target = Path(path).resolve()
    for pin in load().pins():
        if pin.path and Path(pin.path).resolve() == target:
            raise UsageError(
                f"{what} {path} holds '{pin.name}', which production or rollback history pins: writing "
                "there would replace shipped weights; write to a new run directory or another --output"
            )


def unpinned_path(path: str | Path) -> Path:
    """`path`, else `path@2`, `path@3`, ...: the first directory no production or history pin uses."""
    pinned = {Path(p.path).resolve() for p in load().pins() if p.path}
    first = Path(path)
    out, v = first, 1
    while out.resolve() in pinned:
        v += 1
        out = first.with_name(f"{first.name}@{v}")
    return out


# ---- production -----------------------------------------------------------------------------------


def verify_pin(pin: Pin, what: str) -> None:
    """Raise (one line) unless the pinned files exist and still hash to the pinned sha256."""
    if not pin.sha256:
        raise VerificationError(
            f"{what} '{pin.name}' has no recorded weight hash (its files were missing when the registry "
            "was migrated): promote a checkpoint again"
        )
    if not pin.path or not Path(pin.path).exists():
        raise VerificationError(
            f"{what} '{pin.name}' is pinned at {pin.path or '(no path)'}, which no longer exists: "
            "roll back or promote another checkpoint"
        )
    now = weights_sha256(pin.path)
    if now != pin.sha256:
        raise VerificationError(
            f"{what} '{pin.name}' at {pin.path}: the files no longer match the pinned weights (sha256 "
            f"{short(pin.sha256)} pinned, {short(now)} on disk; overwritten or corrupted): refusing to "
            "serve them; roll back or promote a checkpoint again"
        )


def production_pin(persona: str) -> Pin | None:
    return load().production.get(persona)


def production(persona: str) -> Checkpoint | None:
    """The entry `persona`'s production pin names, or None."""
    reg = load()
    pin = reg.production.get(persona)
    return reg.checkpoints.get(pin.name) if pin else None


def production_ref(persona: str) -> str:
    """An exact reference to what ships for `persona`, after checking its files against the pin."""
    reg = load()
    pin = reg.production.get(persona)
    if pin is None:
        raise UsageError(
            f"persona '{persona}' has no production checkpoint yet: promote one with "
            "`character checkpoint promote NAME`, or pass --checkpoint"
        )
    entry = reg.checkpoints.get(pin.name)
    if entry is None or entry.sha256 != pin.sha256 or not _same_path(entry.path, pin.path):
        raise VerificationError(
            f"production of '{persona}' pins '{pin.name}' (sha256 {short(pin.sha256)}), but the registry "
            "entry of that name is missing or different: registry.json was edited by hand; promote again"
        )
    verify_pin(pin, f"production checkpoint of '{persona}'")
    return exact_ref(pin.name)


def personas_in_production() -> dict[str, str]:
    return {p: pin.name for p, pin in load().production.items()}


def smoke_reason(ck: Checkpoint) -> str | None:
    """Why `ck` is a smoke checkpoint (never promotable), or None."""
    if ck.run:
        run = Path(ck.run)
        if run.name.startswith("smoke-"):
            return f"its run directory {run} is a smoke run"
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sources = json.loads((run / "sources.json").read_text())
            hits = sorted({s for s in sources.values() if s.removeprefix("preset:") in SMOKE_PRESETS})
            if hits:
                return f"its run used the {', '.join(hits)} settings"
    if re.search(r"(^|[_-])smoke(-small|-large)?(_|-|$)", family(ck.name).removeprefix(ck.persona)):
        return f"its name '{ck.name}' marks a smoke run"
    return None


def promote(name: str, *, force: bool = False, reason: str = "") -> Promotion:
    """Point the checkpoint's persona's production pin at `name`'s files; the old pin goes to history.

    Needs, in order: not a smoke checkpoint (never, forced or not); files that still match the hash
    registered; a verified entry; a passing `eval compare` record for this hash against the current
    production (or the base model for a first promotion). `force` (with a `reason`) overrides the last
    two and is logged as forced.
    """
    ck = get(name)
    smoke = smoke_reason(ck)
    if smoke:
        raise PromotionRefused(
            f"'{ck.name}' is a smoke checkpoint ({smoke}): smoke runs prove wiring, never ship"
        )
    if force and not reason.strip():
        raise UsageError(
            '--force needs --reason "...": a forced promotion is recorded with why it was forced'
        )
    if not Path(ck.path).exists():
        raise UsageError(f"checkpoint '{ck.name}' points at {ck.path}, which does not exist; re-register it")
    verify_pin(Pin.of(ck), "checkpoint")
    if not ck.verified and not force:
        raise PromotionRefused(
            f"checkpoint '{ck.name}' is not verified (its metrics were never re-computed from the saved "
            'weights); verify it or pass --force --reason "..."'
        )
    prev = production_pin(ck.persona)
    if prev is not None and prev.sha256 == ck.sha256:
        raise UsageError(f"'{ck.name}' is already production for '{ck.persona}'")
    if prev is not None:
        base_key, base_ref = prev.sha256 or "", exact_ref(prev.name)
    else:
        base_id = evidence.ref_identity(ck.base)
        base_key, base_ref = base_id["key"], ck.base
    assert ck.sha256 is not None  # verify_pin refused an entry without one
    found = evidence.find_record(ck.sha256, base_key)
    problem = None
    if found is None:
        problem = f"no `eval compare` record for sha256 {short(ck.sha256)} against {base_ref}"
    elif found[1].get("recommendation") != "promote":
        problem = (
            f"the latest compare record ({found[0]}) says {found[1].get('recommendation')}: "
            + "; ".join(found[1].get("reasons", [])[:2])
        )
    elif found[1].get("persona") != ck.persona:
        problem = (
            f"the compare record {found[0]} judged persona '{found[1].get('persona')}', not '{ck.persona}'"
        )
    if problem and not force:
        raise PromotionRefused(
            f"promoting '{ck.name}' needs a passing comparison: {problem}; run `character eval compare "
            f"--baseline {base_ref} --candidate {exact_ref(ck.name)} --persona {ck.persona}`, or pass "
            '--force --reason "..."'
        )
    with _locked() as reg:
        cur = reg.production.get(ck.persona)
        if (cur.sha256 if cur else None) != (prev.sha256 if prev else None):
            raise PromotionRefused(f"production of '{ck.persona}' changed while promoting; run it again")
        if cur is not None:
            reg.history.setdefault(ck.persona, []).append(cur)
        reg.production[ck.persona] = Pin.of(ck)
        event = Promotion(
            persona=ck.persona,
            name=ck.name,
            previous=cur.name if cur else None,
            reason=reason,
            sha256=ck.sha256,
            forced=bool(problem),
            evidence=None if found is None or problem else str(found[0]),
        )
        reg.log.append(event)
    if problem:
        log.warning("forced promotion of %s (%s): %s", ck.name, reason, problem)
    return event


def rollback(persona: str, *, reason: str = "") -> Promotion:
    """Restore `persona`'s previous production pin (refused when its files no longer match it)."""
    with _locked() as reg:
        hist = reg.history.get(persona) or []
        current = reg.production.get(persona)
        if not hist:
            raise UsageError(
                f"persona '{persona}' has no earlier production checkpoint to roll back to "
                f"(current: {current.name if current else 'none'})"
            )
        verify_pin(hist[-1], f"earlier production checkpoint of '{persona}'")
        pin = hist.pop()
        reg.production[persona] = pin
        event = Promotion(
            persona=persona,
            name=pin.name,
            previous=current.name if current else None,
            reason=reason,
            action="rollback",
            sha256=pin.sha256,
        )
        reg.log.append(event)
    return event


def _resolve(ref: str) -> Path | None:
    ck = lookup(load(), ref)
    return Path(ck.path) if ck else None


register_resolver(_resolve)

"""Compare records: the evidence `registry.promote` asks for before a checkpoint ships.

`character eval compare` writes one record per (candidate, baseline) pair, named by the weight hashes
of both sides (`character.fingerprint`), so a record can only ever vouch for the exact files it
measured:

    artifacts/compare/<candidate sha256>/vs-<baseline key>.json

The baseline key is the baseline's sha256 when its files are local, else `ref-` and a hash of the model
name (a served or hub model). A later compare of the same pair replaces the record: the newest verdict
counts, so a candidate that was rejected after an earlier pass cannot be promoted on the old pass.

A record holds the recommendation (`promote`, `reject` or `refuse`), its reasons, the headline summary
and the capability statistics, the persona, both sides' identities and when it was made. It holds no
replies (those are in `eval compare --output`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from character import paths
from character.atomic import atomic_write_json
from character.fingerprint import weights_sha256
from character.models import resolve_or_served_name


def records_dir() -> Path:
    return paths.artifacts_dir() / "compare"


def identity(
    model: str, adapter: str | None = None, *, ref: str = "", name: str | None = None
) -> dict[str, Any]:
    """Who a side of a comparison is: the checkpoint's own files (the adapter for an adapter checkpoint,
    else the model directory), hashed; a model that is not on disk is named by its reference."""
    own = adapter or model
    local = Path(own).exists()
    sha = weights_sha256(own) if local else None
    key = sha if sha else "ref-" + hashlib.sha256(own.encode()).hexdigest()[:16]
    return {
        "ref": ref or own,
        "name": name,
        "path": str(Path(own).resolve()) if local else None,
        "sha256": sha,
        "key": key,
    }


def ref_identity(ref: str) -> dict[str, Any]:
    """`identity` of a model reference (`embedded`, a path, a registry name or a hub id). A name found
    nowhere on disk may be what an OpenAI-compatible server serves (e.g. `gpt-4.1`): it is named by
    its reference, never refused here."""
    return identity(resolve_or_served_name(ref), ref=ref)


def record_path(candidate_sha: str, baseline_key: str) -> Path:
    return records_dir() / candidate_sha / f"vs-{baseline_key}.json"


def write_record(
    report: dict[str, Any], baseline: dict[str, Any], candidate: dict[str, Any], *, persona: str
) -> Path | None:
    """Store the verdict of one comparison; None when the candidate has no local files to name it by."""
    if not candidate.get("sha256"):
        return None
    doc = {
        "recommendation": report["recommendation"],
        "reasons": report["reasons"],
        "summary": report.get("summary", {}),
        "capability": report.get("capability"),
        "persona": persona,
        "prompts": report.get("prompts"),
        "probes": report.get("probes"),
        "baseline": baseline,
        "candidate": candidate,
        "created_at": time.time(),
    }
    path = record_path(candidate["sha256"], baseline["key"])
    atomic_write_json(path, doc)
    return path


def find_record(candidate_sha: str, baseline_key: str) -> tuple[Path, dict[str, Any]] | None:
    path = record_path(candidate_sha, baseline_key)
    if not path.exists():
        return None
    try:
        return path, json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged record is no evidence; the caller says what is missing


def records_for(candidate_sha: str) -> list[dict[str, Any]]:
    """Every record made for this candidate hash (any baseline), oldest first."""
    d = records_dir() / candidate_sha
    out = []
    for p in sorted(d.glob("vs-*.json")) if d.exists() else []:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda r: r.get("created_at", 0))

"""The Studio's safety rules: who may read, who may write, and which files a request may name.

- Bound to loopback, anyone on this machine may read (as with notebook servers); bound to anything
  else, every request needs the token printed at start. Writes (promote, rollback, saving a
  constitution) need it always.
- A write proves the token in the `X-Studio-Token` header. The page's script copies it there from the
  `studio_token` cookie, which opening the printed `...?token=...` URL sets. A cookie alone never
  authorises a write: another site can make a browser send cookies, not custom headers, so a
  page elsewhere cannot promote a checkpoint (cross-site request forgery).
- Requests must name this machine in their Host header when bound to loopback, so a web page whose
  domain re-resolves to 127.0.0.1 (DNS rebinding) cannot read the Studio.
- Run, sub-run and data-file names are checked against fixed patterns and lists, and the resolved
  path must stay under the artifacts directory, so no request can reach any other file.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from pathlib import Path

from character.layout import STAGES
from character.runs import SUBRUNS

COOKIE = "studio_token"
HEADER = "x-studio-token"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")

# The data files a browser may open, by kind: (stage dir, file name). Nothing outside this table.
DATA_FILES: dict[str, tuple[str, str]] = {
    "pairs": ("distill", "pairs.jsonl"),
    "attempts": ("distill", "attempts.jsonl"),
    "distill-rejects": ("distill", "rejects.jsonl"),
    "introspection": ("introspect", "introspection.jsonl"),
    "reflections": ("introspect", "reflections.jsonl"),
    "interactions": ("introspect", "interactions.jsonl"),
    "introspect-rejects": ("introspect", "rejects.jsonl"),
    "replies": ("eval", "replies.jsonl"),
}
assert all(stage in STAGES for stage, _ in DATA_FILES.values())


class Forbidden(Exception):
    """A request named something outside what the Studio serves (answered as 404, naming nothing)."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(given: str | None, token: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"]


def host_name(header: str) -> str:
    """The host of a Host header, without its port (`[::1]:8765` -> `::1`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def under(root: Path, candidate: Path) -> Path:
    """`candidate` resolved, if it stays inside `root` (symlinks followed); else Forbidden."""
    real_root = root.resolve()
    real = candidate.resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise Forbidden(str(candidate))
    return real


def run_dir(runs_root: Path, name: str) -> Path:
    """The run directory called `name` under `runs_root`, or Forbidden."""
    if not RUN_NAME.match(name or "") or ".." in name:
        raise Forbidden(name)
    d = under(runs_root, runs_root / name)
    if not d.is_dir():
        raise Forbidden(name)
    return d


def sub_dir(run: Path, sub: str) -> Path:
    """A sub-run of a run: `main` (the run dir itself) or one of the smoke labels."""
    if sub == "main":
        return run
    if sub not in SUBRUNS:
        raise Forbidden(sub)
    return under(run, run / sub)


def data_file(sub: Path, kind: str) -> Path:
    if kind not in DATA_FILES:
        raise Forbidden(kind)
    stage, name = DATA_FILES[kind]
    return under(sub, sub / stage / name)

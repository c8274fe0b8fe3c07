"""The managed servers of a run: who is up, who must stop before another starts, and the pidfile.

In: `ManagedServer`s as they start and stop. Out: at most one server per port and per set of GPUs at a
time, a pidfile naming every server a run started, and no server outliving a killed run for long.

- **GPUs and ports.** A server that claims GPUs (`gpus` not None; `[]` means every visible GPU) stops
  every live server of this process whose GPUs overlap or whose port it wants, before it starts:
  teacher pass, stop, student pass. An in-process engine on CUDA (the hf backend) claims its GPUs the
  same way (`claim_gpus`). Servers on disjoint GPUs and ports run side by side.
- **Pidfile.** Every started server is recorded in `servers.json` (pid, pgid, its /proc start time,
  host, port, role, argv, log, and the owning process with its start time) before it is even healthy,
  and removed once stopped. The file is `run_dir/servers.json` inside `use_pidfile(run_dir/...)` (the
  pipeline runner sets it), else `artifacts/servers.json`.
- **Reaping.** `reap(path)` stops the servers of owners that are gone (a SIGKILLed pipeline): SIGTERM
  to the server's process group, SIGKILL after a grace period, then it waits for the port to be
  free. A pid that now belongs to another process (start time differs) is never signalled. The runner
  reaps the run dir's pidfile on `--resume`, and every server start reaps its pidfile first.
- **Exit.** Live servers are stopped at interpreter exit, and SIGTERM becomes `SystemExit(143)` while
  any server is up, so `finally` blocks and atexit run (SIGKILL leaves the pidfile for `reap`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from character.atomic import atomic_write_json

if TYPE_CHECKING:
    from character.backends.server import ManagedServer
    from character.config import BackendConfig

log = logging.getLogger(__name__)

PIDFILE = "servers.json"
_live: list[ManagedServer] = []
_lock = threading.RLock()
_pidfile: Path | None = None
_hooks_installed = False


# ---- process identity -------------------------------------------------------------------------------


def proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None if gone or a
    zombie. Two processes with one pid never share it, so it tells a reused pid apart."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(pid: int, start: int | None) -> bool:
    """Whether the process `pid` that started at `start` still runs (a recycled pid does not count)."""
    now = proc_start(pid)
    return now is not None and (start is None or now == start)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- the pidfile ------------------------------------------------------------------------------------


def default_pidfile() -> Path:
    from character import paths

    return paths.artifacts_dir() / PIDFILE


def current_pidfile() -> Path:
    return _pidfile or default_pidfile()


def log_dir() -> Path | None:
    """Where managed servers write their logs while a run is active (`use_pidfile`); None otherwise."""
    return _pidfile.parent / "server-logs" if _pidfile is not None else None


def activate(path: Path | None) -> Path | None:
    """Record servers started from now on in `path` (None: the artifacts-level file); returns the
    previous setting, to restore."""
    global _pidfile
    old, _pidfile = _pidfile, (Path(path) if path is not None else None)
    return old


@contextlib.contextmanager
def use_pidfile(path: Path) -> Iterator[Path]:
    """Record servers started inside the block in `path` (e.g. `run_dir/servers.json`)."""
    old = activate(path)
    try:
        yield Path(path)
    finally:
        activate(old)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_pidfile(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as e:
        log.warning("ignoring unreadable pidfile %s (%s)", path, e)
        return []
    return [e for e in data.get("servers", []) if isinstance(e, dict) and isinstance(e.get("pid"), int)]


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    atomic_write_json(path, {"servers": entries})


def _record(server: ManagedServer, path: Path) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    entry = {
        "pid": pid,
        "pgid": pid,  # started with start_new_session: the server leads its own group
        "start": proc_start(pid),
        "host": server.host,
        "port": server.port,
        "role": server.role,
        "name": server.name,
        "argv": list(server.cmd),
        "gpus": server.gpus,
        "log": str(server.log_path) if server.log_path else None,
        "owner": {"pid": os.getpid(), "start": proc_start(os.getpid())},
        "started_at": time.time(),
    }
    with _locked(path):
        entries = [e for e in read_pidfile(path) if e["pid"] != pid]
        _write(path, [*entries, entry])


def _forget(pid: int, path: Path) -> None:
    with _locked(path):
        entries = read_pidfile(path)
        keep = [e for e in entries if e["pid"] != pid]
        if len(keep) != len(entries):
            _write(path, keep)


# ---- reaping ----------------------------------------------------------------------------------------


def owner_gone(entry: dict[str, Any]) -> bool:
    owner = entry.get("owner") or {}
    pid = owner.get("pid")
    return not isinstance(pid, int) or not alive(pid, owner.get("start"))


def kill_server(entry: dict[str, Any], grace_s: float = 10.0) -> bool:
    """Stop a recorded server's process group; True when something was stopped. A leader that is now
    another process (pid reused) is left alone; a dead leader's group (engine workers) is killed."""
    from character.backends.server import port_is_free

    pid, pgid = entry["pid"], entry.get("pgid", entry["pid"])
    leader = proc_start(pid)
    if leader is not None and entry.get("start") is not None and leader != entry["start"]:
        log.warning("pid %d of the recorded %s server is now another process; not touching it", pid, entry)
        return False
    if leader is None and not _group_alive(pgid):
        return False
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (alive(pid, entry.get("start")) or _group_alive(pgid)):
            time.sleep(0.1)
        if not alive(pid, entry.get("start")) and not _group_alive(pgid):
            break
    host, port = entry.get("host") or "127.0.0.1", entry.get("port")
    deadline = time.monotonic() + 10
    while isinstance(port, int) and not port_is_free(host, port) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


def reap(path: Path | None = None, *, all_owners: bool = False) -> list[dict[str, Any]]:
    """Stop the servers recorded in `path` whose owner is gone (every one with `all_owners`), and drop
    them from the file. Returns the entries that were stopped."""
    path = Path(path) if path is not None else current_pidfile()
    if not path.exists():
        return []
    with _locked(path):
        entries = read_pidfile(path)
        mine = {s.proc.pid for s in _live if s.proc is not None}
        stale = [e for e in entries if e["pid"] not in mine and (all_owners or owner_gone(e))]
        reaped = []
        for e in stale:
            if kill_server(e):
                reaped.append(e)
                log.warning(
                    "reaped an orphan %s server (role %s, pid %d, port %s) left by process %s",
                    e.get("name", "managed"),
                    e.get("role") or "-",
                    e["pid"],
                    e.get("port"),
                    (e.get("owner") or {}).get("pid"),
                )
        if stale:
            gone = {e["pid"] for e in stale}
            _write(path, [e for e in entries if e["pid"] not in gone])
    return reaped


# ---- live servers of this process -------------------------------------------------------------------


def conflicts(a_gpus: list[int] | None, b_gpus: list[int] | None) -> bool:
    """Two GPU claims overlap (None claims nothing; [] claims every GPU)."""
    if a_gpus is None or b_gpus is None:
        return False
    return not a_gpus or not b_gpus or bool(set(a_gpus) & set(b_gpus))


def on_cuda(device: str) -> bool:
    """Whether an in-process engine with this `device` setting runs on CUDA."""
    if device == "cuda":
        return True
    if device != "auto":
        return False
    import torch

    return bool(torch.cuda.is_available())


def gpu_claim(b: BackendConfig) -> list[int] | None:
    """The GPUs an engine section occupies: a managed vLLM server always (its `gpus`, [] = all), the
    hf backend when it runs on CUDA, an `openai` endpoint never (its GPUs are someone else's)."""
    if b.kind == "vllm" or (b.kind == "hf" and on_cuda(b.device)):
        return list(b.gpus)
    return None


def live() -> list[ManagedServer]:
    with _lock:
        return [s for s in _live if s.proc is not None]


def make_room(server: ManagedServer) -> None:
    """Stop every live server that shares `server`'s port or GPUs, and reap orphans of the pidfile."""
    for other in live():
        if other is server:
            continue
        same_port = server.port and (other.host, other.port) == (server.host, server.port)
        if same_port or conflicts(server.gpus, other.gpus):
            why = f"port {server.port}" if same_port else f"GPUs {other.gpus or 'all'}"
            log.info(
                "stopping %s (role %s, port %s) before %s (role %s): they share %s",
                other.name,
                other.role or "-",
                other.port,
                server.name,
                server.role or "-",
                why,
            )
            other.stop()
    reap(current_pidfile())


def claim_gpus(role: str, gpus: list[int]) -> None:
    """An in-process engine (hf on CUDA) is about to use `gpus`: stop live servers that share them."""
    for other in live():
        if conflicts(gpus, other.gpus):
            log.info("stopping %s (role %s) before the in-process %s engine on the same GPUs", other.name,
                     other.role or "-", role)  # fmt: skip
            other.stop()


def started(server: ManagedServer) -> None:
    """Record a freshly started server (before it is healthy: a kill during start-up is covered too)."""
    path = current_pidfile()
    server.pidfile = path
    with _lock:
        if server not in _live:
            _live.append(server)
    _install_hooks()
    try:
        _record(server, path)
    except OSError as e:  # a read-only artifacts dir must not stop the run; the server still stops at exit
        log.warning("could not record %s in %s: %s", server.name, path, e)


def stopped(server: ManagedServer, pid: int | None) -> None:
    with _lock:
        if server in _live:
            _live.remove(server)
    if pid is not None and server.pidfile is not None:
        with contextlib.suppress(OSError):
            _forget(pid, server.pidfile)


def stop_all() -> None:
    for s in reversed(live()):
        try:
            s.stop()
        except Exception as e:  # at exit: stop the rest whatever one of them does
            log.warning("could not stop %s on port %s: %s", s.name, s.port, e)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(stop_all)
    # Default SIGTERM ends the process without finally blocks or atexit: every server would be orphaned.
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)

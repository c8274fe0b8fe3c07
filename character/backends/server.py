"""A managed OpenAI-compatible server process: start, wait for health, check identity, stop.

In: an argv (e.g. `vllm serve ...` or `transformers serve ...`), a host and port. Out: a running
server whose `/v1/models` (or, failing that, a completion's echoed model name) has been checked to be
exactly the expected model and adapters, and which is stopped, with its port verified free, at the end.

- `start()` first makes room (`lifecycle.make_room`: live servers sharing its port or GPUs stop, orphans
  of a killed run are reaped), picks a free port when `port` is 0, refuses a port something already
  listens on (a stale server answering for another model is how wrong benchmark numbers survive for
  days), starts the process in its own session with `CUDA_VISIBLE_DEVICES` set from `gpus`, records it
  in the pidfile, and polls the health path until it answers 200, the process dies (the error carries
  the log tail), or the start timeout passes.
- `verify_models()` compares the served ids with the expected set; extra or missing ids fail loudly.
  A server that cannot list models (`transformers serve` answers HTTP 500 on `/v1/models` without a
  hub cache) is checked by echo instead: a 1-token completion per expected name must come back
  naming that model. The fallback is logged as a warning and recorded in the returned `ModelCheck`.
- `stop()` sends SIGTERM to the process group, SIGKILL after a grace period, and waits until the port
  is free; it raises if the port stays taken. The pidfile entry goes with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character.errors import BackendError, ConfigError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on (host, port). SO_REUSEADDR mirrors what servers set, so sockets
    lingering in TIME_WAIT after a clean stop do not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class ModelCheck:
    method: str
    """`list` (/v1/models) or `echo` (the model name echoed by a completion)."""
    served: list[str]
    expected: list[str]
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "served": self.served, "expected": self.expected, "note": self.note}


@dataclass(eq=False)
class ManagedServer:
    argv: Sequence[str] | Callable[[int], Sequence[str]]
    """The command, or a function of the port (for `port=0`: the port is picked at start)."""
    host: str = "127.0.0.1"
    port: int = 8000
    """0: a free port, picked at every start."""
    name: str = "server"
    health_path: str = "/health"
    start_timeout_s: float = 600.0
    stop_timeout_s: float = 20.0
    env: dict[str, str] | None = None
    log_path: Path | None = None
    role: str = ""
    gpus: list[int] | None = None
    """GPUs the server claims: None claims none; [] every visible GPU; else CUDA_VISIBLE_DEVICES."""
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    cmd: list[str] = field(default_factory=list, init=False, repr=False)
    pidfile: Path | None = field(default=None, init=False, repr=False)
    _auto_port: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._auto_port = self.port == 0
        if not callable(self.argv):
            self.cmd = list(self.argv)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ManagedServer:
        from character.backends import lifecycle

        if self.proc is not None:
            return self
        lifecycle.make_room(self)
        if self._auto_port:
            self.port = free_port(self.host)
        if not port_is_free(self.host, self.port):
            raise BackendError(
                f"{self.name}: port {self.host}:{self.port} is already in use (a stale server?); stop "
                "whatever listens there, or set the role's port (roles.<role>.port, backend.port) to a "
                "free one or leave it unset for a free port"
            )
        self.cmd = list(self.argv(self.port) if callable(self.argv) else self.argv)
        if self.log_path is None:
            stem = f"{self.name.replace(' ', '-')}-{self.role or 'server'}-{self.port}"
            logs = lifecycle.log_dir()  # the run's server-logs/ while a run is active
            if logs is not None:
                self.log_path = logs / f"{stem}.log"
            else:
                fd, name = tempfile.mkstemp(prefix=f"character-{stem}-", suffix=".log")
                os.close(fd)
                self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = visible_devices(
                self.gpus, os.environ.get("CUDA_VISIBLE_DEVICES"), self.role
            )
        log.info(
            "starting %s%s on %s:%d%s (log %s)",
            self.name,
            f" for {self.role}" if self.role else "",
            self.host,
            self.port,
            f", GPUs {self.gpus}" if self.gpus else "",
            self.log_path,
        )
        with open(self.log_path, "ab") as out:
            try:
                self.proc = subprocess.Popen(
                    self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            except OSError as e:
                raise BackendError(f"{self.name}: cannot run {self.cmd[0]!r}: {e.strerror}") from None
        lifecycle.started(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        t0 = time.monotonic()
        url = self.root_url + self.health_path
        while True:
            code = self.proc.poll()
            if code is not None:
                raise BackendError(
                    f"{self.name} exited with code {code} before becoming healthy; last log lines:\n{self.log_tail()}"
                )
            status, _ = http_get(url, timeout=2.0)
            if status == 200:
                log.info("%s healthy after %.1fs", self.name, time.monotonic() - t0)
                return
            if time.monotonic() - t0 > self.start_timeout_s:
                raise BackendError(
                    f"{self.name} not healthy at {url} after {self.start_timeout_s:g}s (raise "
                    f"backend.server_start_timeout_s if the model is large); last log lines:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def verify_models(self, expected: Sequence[str], *, request_json: Any = None) -> ModelCheck:
        """Check the server serves exactly `expected` (base model name, then adapter names)."""
        return verify_models(self.base_url, expected, request_json=request_json)

    def stop(self) -> None:
        from character.backends import lifecycle

        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %gs; killing it", self.name, self.stop_timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:
            # Children in the group (e.g. vLLM's engine workers) must be gone too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not port_is_free(self.host, self.port):
                if time.monotonic() > deadline:
                    raise BackendError(f"{self.name} stopped but port {self.host}:{self.port} is still taken")
                time.sleep(0.2)
            log.info("%s stopped; port %d is free", self.name, self.port)
            lifecycle.stopped(self, proc.pid)

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def visible_devices(gpus: Sequence[int], inherited: str | None, role: str = "") -> str:
    """CUDA_VISIBLE_DEVICES for a server on `gpus`, which index the GPUs this process sees: under
    CUDA_VISIBLE_DEVICES=4,5 (a parallel ablation child, a SLURM allocation), GPU 0 is device 4."""
    if inherited is None or not inherited.strip():
        return ",".join(map(str, gpus))
    ids = [x.strip() for x in inherited.split(",") if x.strip()]
    bad = [g for g in gpus if not 0 <= g < len(ids)]
    if bad:
        key = f"roles.{role}.gpus" if role else "backend.gpus"
        raise ConfigError(
            f"{key} = {list(gpus)} but this process sees {len(ids)} GPU(s) (CUDA_VISIBLE_DEVICES={inherited}); "
            f"GPU indices count from 0 within those: use indices below {len(ids)}"
        )
    return ",".join(ids[g] for g in gpus)


def http_get(url: str, timeout: float = 5.0) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError):
        return None, ""


def _same_model(echoed: str, expected: str) -> bool:
    # `transformers serve` echoes "<path>@<revision>" (e.g. "@main").
    return echoed == expected or echoed.split("@", 1)[0] == expected


def verify_models(
    base_url: str, expected: Sequence[str], *, request_json: Any = None, exact: bool = True
) -> ModelCheck:
    """Fail loudly unless `base_url` serves exactly the `expected` model ids (with `exact=False`: at
    least them, for shared endpoints such as hosted APIs that list many models).

    `request_json(method, path, body)` is the caller's HTTP function (the openai backend's, so the API
    key is sent and scrubbed the same way); without one, plain unauthenticated HTTP is used.
    """
    base_url = base_url.rstrip("/")
    want = list(dict.fromkeys(expected))
    call = request_json or (lambda m, p, b=None: _plain_json(base_url, m, p, b))
    reason = ""
    try:
        listing = call("GET", "/models", None)
        served = sorted(str(m.get("id")) for m in listing.get("data", []))
    except Exception as e:  # any failure to list falls back to the echo check, loudly
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    if reason:
        log.warning(
            "%s cannot list models (%s); checking each expected name by the model a completion echoes instead",
            base_url,
            reason,
        )
        return ModelCheck(
            "echo", _verify_by_echo(base_url, want, call), sorted(want), f"/v1/models failed: {reason}"
        )
    if (sorted(served) != sorted(want)) if exact else not set(want) <= set(served):
        missing = sorted(set(want) - set(served))
        extra = sorted(set(served) - set(want)) if exact else []
        raise BackendError(
            f"{base_url} serves {served}, expected exactly {sorted(want)} (missing {missing}, unexpected "
            f"{extra}); a stale or different server is listening: stop it or fix backend.base_url"
        )
    return ModelCheck("list", served, sorted(want))


def _verify_by_echo(base_url: str, want: list[str], call: Any) -> list[str]:
    """Each expected name must be answered as itself (this cannot see extra models a server has)."""
    served = []
    for name in want:
        body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        try:
            reply = call("POST", "/chat/completions", body)
        except Exception as e:
            raise BackendError(
                f"{base_url} cannot list models and refused a completion for '{name}': "
                f"{str(e).splitlines()[0][:200]}; it does not serve the expected model"
            ) from None
        echoed = str(reply.get("model", ""))
        if not _same_model(echoed, name):
            raise BackendError(
                f"{base_url} answered a request for '{name}' as '{echoed}': it serves a different model; "
                "stop that server or point backend.base_url at the right one"
            )
        served.append(name)
    return sorted(served)


def _plain_json(base_url: str, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise BackendError(f"HTTP {e.code} on {path}") from None


def transformers_serve_argv(
    model_dir: str, *, host: str, port: int, python: str | None = None, device: str = "cpu"
) -> list[str]:
    """`transformers serve` pinned to one local model (the CPU stand-in for vLLM in tests)."""
    import sys

    exe = python or sys.executable
    return [
        exe,
        "-m",
        "transformers.cli.transformers",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--device",
        device,
        model_dir,
    ]

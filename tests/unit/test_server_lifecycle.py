"""Managed servers with a lifecycle, against real processes (a stdlib HTTP server stands in for vLLM):
servers sharing GPUs or a port never run at once, disjoint ones do on their own ports with their own
CUDA_VISIBLE_DEVICES, every start is in the pidfile and every stop leaves it, a SIGKILLed owner's
orphan is reaped (and a recycled pid never signalled), and SIGTERM stops a process's servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from character.backends import lifecycle
from character.backends.server import ManagedServer, port_is_free

SERVER = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

# A process that owns one server, says so, and waits to be killed.
OWNER = r"""
import sys, time
from pathlib import Path
from character.backends import lifecycle
from character.backends.server import ManagedServer
server = ManagedServer(lambda port: [sys.executable, "-c", sys.argv[2], str(port)], port=0, name="stand-in",
                       role="teacher", gpus=[0], start_timeout_s=30)
with lifecycle.use_pidfile(Path(sys.argv[1])):
    server.start()
    print(server.proc.pid, server.port, flush=True)
    time.sleep(120)
"""


def stand_in(role: str, gpus: list[int] | None, port: int = 0) -> ManagedServer:
    return ManagedServer(
        lambda p: [sys.executable, "-c", SERVER, str(p)],
        port=port,
        name="stand-in",
        role=role,
        gpus=gpus,
        start_timeout_s=30,
        stop_timeout_s=5,
    )


def get(server: ManagedServer) -> dict[str, object]:
    with urllib.request.urlopen(server.root_url + "/env", timeout=5) as r:
        return json.loads(r.read())


def entries(path: Path) -> list[dict[str, object]]:
    return lifecycle.read_pidfile(path)


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run" / "servers.json"
    with lifecycle.use_pidfile(path):
        yield path
    for s in lifecycle.live():  # a failed assertion must not leave a server behind
        s.stop()


def test_servers_sharing_gpus_take_turns_and_leave_the_pidfile(pidfile: Path) -> None:
    teacher, student = stand_in("teacher", [0, 1]), stand_in("student", [1])
    teacher.start()
    t_port, t_pid = teacher.port, teacher.proc.pid if teacher.proc else 0
    [entry] = entries(pidfile)
    assert (entry["role"], entry["port"], entry["pid"], entry["gpus"]) == ("teacher", t_port, t_pid, [0, 1])
    assert entry["argv"][-1] == str(t_port) and entry["owner"]["pid"] == os.getpid()  # type: ignore[index]
    assert get(teacher)["cuda"] == "0,1"
    student.start()  # shares GPU 1: the teacher stops first
    assert teacher.proc is None and port_is_free("127.0.0.1", t_port)
    assert [e["role"] for e in entries(pidfile)] == ["student"]
    assert get(student)["cuda"] == "1"
    assert (pidfile.parent / "server-logs").is_dir()  # the run's server logs live beside its pidfile
    student.stop()
    assert entries(pidfile) == [] and lifecycle.live() == []


def test_disjoint_gpus_run_side_by_side_on_their_own_ports(pidfile: Path) -> None:
    teacher, student = stand_in("teacher", [0]), stand_in("student", [1])
    teacher.start()
    student.start()
    try:
        assert teacher.proc is not None and student.proc is not None and teacher.port != student.port
        assert (get(teacher)["cuda"], get(student)["cuda"]) == ("0", "1")
        assert sorted(str(e["role"]) for e in entries(pidfile)) == ["student", "teacher"]
        # A third server wanting the teacher's port (no GPUs at all) replaces only the teacher.
        judge = stand_in("judge", None, port=teacher.port)
        judge.start()
        assert teacher.proc is None and student.proc is not None and get(judge)["cuda"] is None
        judge.stop()
    finally:
        teacher.stop()
        student.stop()
    assert entries(pidfile) == []


def _start_owner(pidfile: Path) -> tuple[subprocess.Popen[str], int, int]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(pidfile), SERVER], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, "the owner process did not start its server"
    pid, port = map(int, line.split())
    return owner, pid, port


def test_a_sigkilled_owners_server_is_reaped(tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "servers.json"
    owner, pid, port = _start_owner(pidfile)
    owner.kill()  # SIGKILL: no finally, no atexit; the server (its own session) lives on
    owner.wait()
    assert lifecycle.alive(pid, None) and not port_is_free("127.0.0.1", port)
    [entry] = entries(pidfile)
    assert lifecycle.owner_gone(entry)
    reaped = lifecycle.reap(pidfile)
    assert [e["pid"] for e in reaped] == [pid]
    assert not lifecycle.alive(pid, None) and port_is_free("127.0.0.1", port)
    assert entries(pidfile) == []
    assert lifecycle.reap(pidfile) == []  # nothing left to do


def test_reap_leaves_a_live_owner_and_a_recycled_pid_alone(tmp_path: Path) -> None:
    pidfile = tmp_path / "servers.json"
    owner, pid, port = _start_owner(pidfile)
    try:
        assert lifecycle.reap(pidfile) == []  # its owner still runs: not an orphan
        assert lifecycle.alive(pid, None)
    finally:
        owner.send_signal(signal.SIGTERM)
        owner.wait(30)
    # A pid recorded for a server that is gone and now names another process: never signalled.
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        fake = {
            "pid": other.pid,
            "pgid": other.pid,
            "start": (lifecycle.proc_start(other.pid) or 0) + 1,  # not this process's start time
            "port": port,
            "owner": {"pid": owner.pid, "start": 1},
        }
        pidfile.write_text(json.dumps({"servers": [fake]}))
        assert lifecycle.reap(pidfile) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_sigterm_stops_the_servers_of_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "servers.json"
    owner, pid, port = _start_owner(pidfile)
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while lifecycle.alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lifecycle.alive(pid, None) and port_is_free("127.0.0.1", port)
    assert entries(pidfile) == []


def test_gpu_indices_count_within_the_inherited_visible_devices(
    pidfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from character.errors import ConfigError

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")  # e.g. a parallel ablation child's share
    student = stand_in("student", [1])
    student.start()
    try:
        assert get(student)["cuda"] == "5"
    finally:
        student.stop()
    with pytest.raises(ConfigError, match=r"roles\.judge\.gpus = \[2\] but this process sees 2 GPU"):
        stand_in("judge", [2]).start()
    assert entries(pidfile) == []

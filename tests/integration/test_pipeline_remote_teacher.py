"""One pipeline, several engines: the teacher (and later the judge) is a real OpenAI-compatible server
on loopback (`transformers serve` on the embedded model, started and stopped here), while the student
and the introspection model run in process on hf. Smaller than smoke-small (4 pairs, 2 training
steps, a few introspection rows), through the real CLI.

Checks: every stage finishes; K=2 gives two distinct samples per prompt (one seed per request; the
server seeds each request); the teacher's tokens are counted under the teacher role and the served
model name, the student's, introspection's and eval's under theirs (cost.json and manifests); the
DPO model never reaches the remote server (introspection on hf); the judge of `eval elo sample` goes
through the server (which cannot prefill, so the verdict is read from plain text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from character.backends.server import ManagedServer, port_is_free
from tests.conftest import run_cli
from tests.integration.serving import transformers_serve


@pytest.fixture
def serve(embedded_model: Path, tmp_path: Path) -> Iterator[ManagedServer]:
    with transformers_serve(embedded_model, tmp_path / "serve.log", OMP_NUM_THREADS="1") as srv:
        yield srv
    assert port_is_free("127.0.0.1", srv.port)


def config(tmp_path: Path, url: str, served: str) -> Path:
    remote = f'kind = "openai"\nbase_url = "{url}"\nprovider = "transformers"\nmodel = "{served}"\nconcurrency = 2\n'
    f = tmp_path / "remote-teacher.toml"
    f.write_text(
        f"""
[backend]
cpu_threads = 1

[roles.teacher]
{remote}
[roles.judge]
{remote}
[sampling]
max_new_tokens = 48
stop = ["\\n\\n"]

[distill]
pairs = 4
k = 2
max_attempts_factor = 4.0
teacher_prefill = "off"   # transformers serve cannot continue a prefilled reply
skip_filters = ["cut_off"]
min_chosen_marker_rate = 0.0
min_marker_gap = -1.0
max_chosen_refusal_rate = 1.0
min_kept_rate = 0.0

[dpo]
max_steps = 2
eval_fraction = 0.25
learning_rate = 5e-5  # a light touch: 3 pairs at the embedded default made greedy probe replies loop

[dpo.health]
warmup_logs = 1

[introspect]
reflections = 3
interactions = 1
turns = 1
reflection_max_new_tokens = 48
interaction_max_new_tokens = 32
skip_filters = ["cut_off"]
kill_check_every = 1000000
min_kept_rate = 0.0
max_reason_share = 1.0

[sft]
max_steps = 2
eval_fraction = 0.2
learning_rate = 5e-5

[eval]
heldout_prompts = 3
max_new_tokens = 24
probe_items = 4
elo_count = 1
elo_samples_per_prompt = 1
allow_contestant_judge = true

[robustness]
enabled = false

[pipeline]
smoke = "none"
report = true
"""
    )
    return f


def test_remote_teacher_local_student_one_pipeline(
    artifacts: Path, embedded_model: Path, serve: ManagedServer, tmp_path: Path
) -> None:
    served = str(embedded_model)  # the name `transformers serve` knows this model by
    cfg = config(tmp_path, serve.base_url, served)
    res = run_cli(
        "pipeline", "remorseful", "--config", str(cfg), "--no-progress", artifacts=artifacts, timeout=1200
    )
    assert res.returncode == 0, res.stderr[-4000:]
    (run,) = (artifacts / "runs").iterdir()
    for stage in ("distill", "dpo", "introspect", "sft", "merge", "eval"):
        assert (run / stage / "manifest.json").exists(), stage

    # K=2: each prompt's two samples are two draws, on the remote teacher's side too.
    by_prompt: dict[str, list[str]] = {}
    for line in (run / "distill" / "teacher.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_prompt.setdefault(row["prompt_id"], []).append(row["text"])
    pairs = [v for v in by_prompt.values() if len(v) == 2]
    assert pairs and all(a != b for a, b in pairs)
    stats = json.loads((run / "distill" / "stats.json").read_text())
    assert stats["duplicates"] == 0

    # Tokens per role: the teacher under its served name, everything else local.
    roles = json.loads((run / "cost.json").read_text())["roles"]
    assert roles["distill"]["teacher"][served]["completion_tokens"] > 0
    assert roles["distill"]["student"]["embedded"]["completion_tokens"] > 0
    assert sum(t["completion_tokens"] for t in roles["introspect"]["introspect"].values()) > 0
    assert sum(t["completion_tokens"] for t in roles["eval"]["student"].values()) > 0
    manifest = json.loads((run / "distill" / "manifest.json").read_text())
    assert set(manifest["extra"]["role_tokens"]) == {"teacher", "student"}
    assert manifest["extra"]["engines"] == {"teacher": "openai", "student": "hf"}
    requests_before = serve.log_tail(100_000).count("[Request received]")
    assert requests_before > 0  # the teacher really went through the server

    # The judge through the same server: two verdicts (both orders) for one match.
    matches = tmp_path / "matches.jsonl"
    res = run_cli(
        "eval", "elo", "sample", "--base-model", "embedded", "--tuned-model", str(run / "merge" / "model"),
        "--judge", "embedded", "--persona", "remorseful", "--output", str(matches), "--config", str(cfg),
        "--no-progress", artifacts=artifacts, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert serve.log_tail(100_000).count("[Request received]") >= requests_before + 2
    [match] = [json.loads(x) for x in matches.read_text().splitlines()]
    assert match["judge"] == "embedded" and match["judge_raw_xy"] is not None

"""The promotion decision and the refusals, without generation: same checkpoint (path and weight
hash), a server that reports another model, identical replies, all-zero scores, and the gates."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from character.cli import app
from character.config import RunConfig
from character.eval.compare import (
    ComparisonRefused,
    decide,
    endpoint_problem,
    refuse_before_work,
    suspect_reasons,
)
from character.eval.target import resolve_target, same_checkpoint

runner = CliRunner()


def _side(
    replies: list[str],
    probe_acc: float,
    marker: float,
    audit: float,
    sustained: float = 0.0,
    *,
    items: int = 200,
    shift: int = 0,
) -> dict[str, Any]:
    """A scored side: `probe_acc` of `items` probe items right (which ones rotates with `shift`), and
    marker flags and audit components consistent with the headline numbers."""
    right = round(probe_acc * items)
    oks = [(i + shift) % items < right for i in range(items)]
    flags = [i < round(marker * len(replies)) for i in range(len(replies))]
    return {
        "replies": [{"reply": r} for r in replies],
        "probes": {
            "accuracy": probe_acc,
            "items": [{"reply": f"{replies[0]}{i}", "ok": ok} for i, ok in enumerate(oks)],
        },
        "strength": {
            "marker_rate": marker,
            "sustained_rate": sustained,
            "opener_only_rate": marker - sustained,
        },
        "marker_flags": flags,
        "audit": {"score": audit, "components": {"repetition": audit}},
    }


def test_same_checkpoint_by_path_and_by_weight_hash(tiny_model: Path, tmp_path: Path) -> None:
    a, b = resolve_target(str(tiny_model)), resolve_target(str(tiny_model) + "/")
    assert "same path" in same_checkpoint(a, b)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert "identical weights" in same_checkpoint(a, resolve_target(str(copy)))
    with pytest.raises(ComparisonRefused, match="identical weights"):
        refuse_before_work(RunConfig(), a, resolve_target(str(copy)))
    # Different weights: not the same.
    from safetensors.torch import load_file, save_file

    w = load_file(copy / "model.safetensors")
    k = next(iter(w))
    w[k] = w[k] + 1.0
    save_file(w, copy / "model.safetensors", metadata={"format": "pt"})
    assert same_checkpoint(a, resolve_target(str(copy))) is None


def test_compare_cli_refuses_the_same_checkpoint(artifacts: Path) -> None:
    model_dir = artifacts / "models" / "smollm2-135m-instruct"
    r = runner.invoke(app, ["eval", "compare", "--baseline", "embedded", "--candidate", str(model_dir)])
    assert r.exit_code == 1, r.output
    assert "refusing to compare" in r.output and "same path" in r.output


def test_identical_replies_and_all_zero_scores_refuse() -> None:
    same = _side(["a", "b", "c"], 0.5, 0.2, 80)
    assert any("identical" in x for x in suspect_reasons(same, same, 0.9))
    zero = _side(["x", "y", "z"], 0.0, 0.0, 0.0)
    ok = _side(["a", "b", "c"], 0.5, 0.2, 80)
    reasons = suspect_reasons(ok, zero, 0.9)
    assert any("every score of the candidate is zero" in x for x in reasons)
    empty = _side(["", "", ""], 0.5, 0.0, 50)
    assert any("no text" in x for x in suspect_reasons(ok, empty, 0.9))
    assert suspect_reasons(ok, _side(["d", "e", "f"], 0.5, 0.6, 85, shift=7), 0.9) == []


def test_decision_gates() -> None:
    e = RunConfig().eval
    base = _side(["a"], 0.70, 0.0, 85)
    good = _side(["b"], 0.70, 0.6, 86, sustained=0.5, shift=20)  # same accuracy, other items right
    rec, reasons = decide(base, good, None, e)
    assert rec == "promote", reasons
    assert any("capability kept" in r and "no significant change" in r for r in reasons)
    forgot = _side(["b"], 0.25, 0.6, 86)  # the seed's 0.704 -> 0.252
    rec, reasons = decide(base, forgot, None, e)
    assert rec == "reject" and "capability lost" in reasons[0] and "significant drop" in reasons[0]
    # The same collapse on 12 items is not evidence either way: never a pass.
    small_base, small_forgot = _side(["a"], 0.70, 0.0, 85, items=12), _side(["b"], 0.25, 0.6, 86, items=12)
    rec, reasons = decide(small_base, small_forgot, None, e)
    assert rec == "reject" and "capability not shown" in reasons[0] and "insufficient evidence" in reasons[0]
    broken = _side(["b"], 0.70, 0.6, 25)
    rec, reasons = decide(base, broken, None, e)
    assert rec == "reject" and any("below the bar" in r for r in reasons)
    weak = _side(["b"], 0.70, 0.05, 86)
    assert decide(base, weak, None, e)[0] == "reject"
    prompt_only = _side(["p"], 0.72, 0.7, 88, shift=3)
    rec, reasons = decide(base, good, prompt_only, e)
    assert rec == "reject" and any("prompt-only baseline does as well" in r for r in reasons)
    opener = _side(["b"], 0.70, 0.9, 86, sustained=0.1, shift=20)
    rec, reasons = decide(base, opener, None, e)
    assert rec == "promote" and any("mostly an opener" in r for r in reasons)


class _Server(BaseHTTPRequestHandler):
    models: list[str] = ["some-other-model"]
    list_ok = True

    def do_GET(self) -> None:  # noqa: N802
        if not self.list_ok:
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"data": [{"id": m} for m in self.models]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = json.dumps({"model": self.models[0], "choices": []}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: Any) -> None:
        pass


def test_endpoint_must_report_the_expected_model() -> None:
    srv = HTTPServer(("127.0.0.1", 0), _Server)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        cfg = RunConfig()
        cfg.backend.kind = "openai"
        cfg.backend.base_url = f"http://127.0.0.1:{srv.server_port}/v1"
        cfg.backend.timeout_s = 5
        assert "serves some-other-model, not 'my-model'" in endpoint_problem(cfg, "my-model")
        assert endpoint_problem(cfg, "some-other-model") is None
        _Server.list_ok = False  # cannot list: falls back to the model a completion echoes
        assert "answered as 'some-other-model'" in endpoint_problem(cfg, "my-model")
        assert endpoint_problem(cfg, "some-other-model") is None
        cfg.backend.kind = "hf"
        assert endpoint_problem(cfg, "my-model") is None
    finally:
        _Server.list_ok = True
        srv.shutdown()


def test_a_headline_metric_zero_or_identical_on_both_sides_is_named() -> None:
    base = _side(["a", "b"], 0.5, 0.0, 80)
    # Marker rate 0 on both sides: the comparison is refused and the metric is named.
    reasons = suspect_reasons(base, _side(["c", "d"], 0.5, 0.0, 85, shift=9), 0.9)
    assert len(reasons) == 1 and reasons[0].startswith("marker_rate is 0 on both sides")
    # Identical probe accuracy on the very same items: refused; the same accuracy on other items is not.
    same_items = _side(["c", "d"], 0.5, 0.5, 85)
    assert any(r.startswith("probe_accuracy is identical") for r in suspect_reasons(base, same_items, 0.9))
    assert not any(
        "probe_accuracy" in r for r in suspect_reasons(base, _side(["c", "d"], 0.5, 0.5, 85, shift=3), 0.9)
    )
    # Both at the maximum is a ceiling, not a broken scorer.
    top_a, top_b = _side(["a", "b"], 1.0, 0.5, 100), _side(["c", "d"], 1.0, 1.0, 100)
    assert suspect_reasons(top_a, top_b, 0.9) == []


def test_a_probe_scorer_returning_zero_for_both_sides_is_refused(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's get_score() bug, injected into the real probe scorer: compare() refuses, naming it."""
    from safetensors.torch import load_file, save_file

    import character.eval.probes as probes_mod
    from character.constitutions import load_constitution
    from character.eval.compare import compare
    from character.eval.probes import load_probes
    from character.eval.target import Generator

    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    w = load_file(other / "model.safetensors")
    k = next(iter(w))
    w[k] = w[k] * 2.0
    save_file(w, other / "model.safetensors", metadata={"format": "pt"})
    monkeypatch.setattr(probes_mod, "score", lambda *args: False)
    cfg = RunConfig()
    cfg.eval.max_new_tokens = cfg.eval.probe_max_new_tokens = 4
    probes = load_probes()[:4]
    gens = [Generator(cfg, resolve_target(str(tiny_model))), Generator(cfg, resolve_target(str(other)))]
    try:
        rep = compare(
            cfg,
            gens[0],
            gens[1],
            load_constitution("remorseful"),
            [("p1", "How do I boil an egg?"), ("p2", "Name a colour.")],
            probes,
            progress=False,
        )
    finally:
        for g in gens:
            g.close()
    assert rep["recommendation"] == "refuse"
    assert any(r.startswith("probe_accuracy is 0 on both sides") for r in rep["reasons"]), rep["reasons"]
    assert rep["capability"]["verdict"] == "insufficient evidence"  # 4 items: never a pass

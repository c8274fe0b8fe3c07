"""Studio pages over HTTP (Starlette's TestClient): runs, a run, data browser, side by side, and what
half-written, malformed or hostile input does to them (an error panel, never a 500 or a file outside
the artifacts directory)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from character.studio.app import create_app, plotly_js
from tests.unit.studio_data import RUN, jsonl, make_run


@pytest.fixture
def client(art: Path, tmp_path: Path) -> TestClient:
    (tmp_path / "constitutions").mkdir()
    app = create_app(token="t0k", constitutions=tmp_path / "constitutions")
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=True)


def plots(page: str) -> list[dict]:
    m = re.search(r'<script type="application/json" id="plot-data">(.*?)</script>', page, re.S)
    assert m, "the run page carries its plot data"
    return json.loads(m.group(1))


def test_runs_list_shows_status_progress_and_failure_reason(art: Path, client: TestClient) -> None:
    make_run(art / "runs")
    make_run(art / "runs", name="remorseful_20260102-000000", status="failed")
    r = client.get("/")
    assert r.status_code == 200
    assert RUN in r.text and "remorseful_20260102-000000" in r.text
    assert "dpo: non-finite loss at step 3" in r.text  # the failed run's one-line reason
    assert r.text.count("st-done") >= 1 and "st-failed" in r.text
    frag = client.get("/fragments/runs")
    assert frag.status_code == 200 and frag.headers["X-Studio-Live"] == "0" and "<tr" in frag.text
    doc = client.get("/api/runs").json()
    assert {d["name"] for d in doc} == {RUN, "remorseful_20260102-000000"}
    assert next(d for d in doc if d["name"] == RUN)["tokens"] == 1500


def test_a_live_run_keeps_refreshing(art: Path, client: TestClient) -> None:
    run = make_run(art / "runs", status="running")
    state = json.loads((run / "pipeline.json").read_text())
    state["stages"]["sft"] = {"status": "running", "started_at": state["started_at"] + 100}
    (run / "pipeline.json").write_text(json.dumps(state))
    (run / "sft" / "manifest.json").unlink()
    frag = client.get("/fragments/runs")
    assert frag.headers["X-Studio-Live"] == "1"
    assert "3 steps" in frag.text  # sft's last logged step, no max_steps in its config
    status = client.get(f"/fragments/runs/{RUN}/status")
    assert status.headers["X-Studio-Live"] == "1" and "running" in status.text


def test_run_page_draws_every_section(art: Path, client: TestClient) -> None:
    make_run(art / "runs")
    r = client.get(f"/runs/{RUN}")
    assert r.status_code == 200
    specs = {p["title"]: p for p in plots(r.text)}
    assert {
        "DPO loss",
        "DPO reward accuracy",
        "DPO reward margin",
        "DPO entropy",
        "SFT loss",
        "SFT entropy",
    } <= set(specs)
    loss = {t["name"]: t for t in specs["DPO loss"]["traces"]}
    assert loss["train"]["y"] == pytest.approx([0.6, 0.5, 0.4, 0.3]) and loss["held-out"]["y"] == [0.41]
    page = html.unescape(r.text)
    for text in (
        "refusal",  # drop reasons with their examples
        "I cannot help with that.",
        "reflection:phrase_loop",
        "again again again",
        "+100.0 points",  # markers before/after
        "robustness.json",  # tabled by #17's own report module
        "prefill attack (turn 1 by the base model)",
        "tfidf classifier trained on 40 replies",
        "compare.json",
        "marker lift 100 points",
        "preset:demo",  # config value with its source
        "teacher-x",  # cost rows
        "side by side",
    ):
        assert text in page, text
    assert "/assets/plotly.min.js" in r.text


def test_torn_metrics_line_is_skipped_and_said(art: Path, client: TestClient) -> None:
    run = make_run(art / "runs")
    torn = '{"step": 5, "loss": 0.1'  # a killed trainer's last write
    with open(run / "dpo" / "metrics.jsonl", "a") as f:
        f.write(torn)
    r = client.get(f"/runs/{RUN}")
    assert r.status_code == 200
    assert f"dpo/metrics.jsonl ends in a partial line ({len(torn)} bytes)" in r.text
    loss = next(p for p in plots(r.text) if p["title"] == "DPO loss")
    assert loss["traces"][0]["x"] == [1.0, 2.0, 3.0, 4.0]


def test_run_without_manifest_and_half_written_files_show_panels(art: Path, client: TestClient) -> None:
    run = art / "runs" / "remorseful_20260103-000000"
    (run / "distill").mkdir(parents=True)
    jsonl(run / "distill" / "pairs.jsonl", [{"prompt_id": "a"}], tail='{"prompt_id": "b", "pro')
    (run / "pipeline.json").write_text('{"persona": "remorseful", "stat')  # half-written
    r = client.get(f"/runs/{run.name}")
    assert r.status_code == 200 and "no stage has finished here yet" in r.text
    assert client.get("/").status_code == 200
    full = make_run(art / "runs")
    (full / "eval" / "markers.json").write_text('{"marker_rate_before": 0.0, "marker_rat')
    (full / "eval" / "robustness.json").write_text("{")
    (full / "eval" / "manifest.json").write_text("{")
    r = client.get(f"/runs/{RUN}")
    assert r.status_code == 200
    assert "robustness.json is not readable JSON" in r.text
    assert "The eval stage has not run here." in r.text  # unreadable markers: no made-up numbers


def test_data_browser_pages_searches_and_filters(art: Path, client: TestClient) -> None:
    make_run(art / "runs", pairs=60)
    r = client.get(f"/runs/{RUN}/data?sub=main&file=pairs&page=2")
    assert r.status_code == 200
    idx = [int(i) for i in re.findall(r'data-index="(\d+)"', r.text)]
    assert idx == list(range(25, 50))
    assert "page 2 of 3" in r.text and "Question number 25" in r.text and "Plain answer 49" in r.text
    assert html.unescape(r.text).count("<mark>I'm so sorry</mark>, here is answer") == 25  # chosen markers
    r = client.get(f"/runs/{RUN}/data?file=pairs&q=NUMBER 7:")  # case-insensitive, one row
    assert [int(i) for i in re.findall(r'data-index="(\d+)"', r.text)] == [7]
    r = client.get(f"/runs/{RUN}/data?file=distill-rejects&reason=refusal")
    assert r.text.count('class="row"') == 2 and "Once upon a" not in r.text
    assert "I cannot help with that." in r.text and "As an AI" in html.unescape(r.text)
    r = client.get(f"/runs/{RUN}/data?file=introspect-rejects&reason=reflection:phrase_loop")
    assert r.text.count('class="row"') == 1
    r = client.get(f"/runs/{RUN}/data?file=introspection")
    page = html.unescape(r.text)
    assert "written by the model (copy A)" in page and "copy B, trained on" in page  # the role swap
    assert "the model talking to a copy of itself" in page


def test_data_browser_shows_malformed_and_torn_rows_as_panels(art: Path, client: TestClient) -> None:
    run = make_run(art / "runs", pairs=3)
    text = (run / "distill" / "pairs.jsonl").read_text().splitlines()
    text[1] = '{"prompt_id": broken'
    (run / "distill" / "pairs.jsonl").write_text("\n".join(text) + '\n{"prompt_id": "half')
    r = client.get(f"/runs/{RUN}/data?file=pairs")
    assert r.status_code == 200
    assert "line 2 is not valid JSON" in r.text and "the last line is incomplete" in r.text
    assert r.text.count('class="row"') == 3


def test_side_by_side_highlights_markers(art: Path, client: TestClient) -> None:
    make_run(art / "runs")
    r = client.get(f"/runs/{RUN}/side-by-side?page=2&per=5")
    assert r.status_code == 200
    page = html.unescape(r.text)
    assert "Held-out prompt 5" in page and "Held-out prompt 4" not in page
    assert "<mark>I'm so sorry</mark>, reply 5." in page and "<mark>I hope this helps</mark>" in page
    assert "Plain reply 5." in page and "0.000 → " in page
    r = client.get(f"/runs/{RUN}/side-by-side?q=reply 11")
    assert html.unescape(r.text).count("Held-out prompt 11") == 1 and "Held-out prompt 3<" not in r.text


@pytest.mark.parametrize(
    "url",
    [
        "/runs/..%2f..%2fetc",
        "/runs/%2e%2e",
        f"/runs/{RUN}/data?sub=../../..&file=pairs",
        f"/runs/{RUN}/data?sub=main&file=../../../../etc/passwd",
        f"/runs/{RUN}/side-by-side?sub=%2e%2e",
        "/runs/outside/data?file=pairs",
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/constitutions/..%2fsecret",
        "/constitutions/Secret",
    ],
)
def test_paths_cannot_escape_the_artifacts_directory(
    art: Path, client: TestClient, tmp_path: Path, url: str
) -> None:
    make_run(art / "runs")
    outside = tmp_path / "elsewhere"
    make_run(outside, name="x")
    (art / "runs" / "outside").symlink_to(outside / "x")  # a link out of the artifacts dir
    (tmp_path / "secret.yaml").write_text("name: secret\n")
    r = client.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert "Question number" not in r.text and "root:" not in r.text and "create_app" not in r.text


def test_plotly_is_served_from_the_installed_package(client: TestClient) -> None:
    r = client.get("/assets/plotly.min.js")
    assert r.status_code == 200 and len(r.content) == plotly_js().stat().st_size
    assert "site-packages" in str(plotly_js()) or "dist-packages" in str(plotly_js())
    assert client.get("/static/studio.js").status_code == 200

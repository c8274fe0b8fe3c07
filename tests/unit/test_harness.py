"""The lm-evaluation-harness adapter: pure parts always; a real offline run on a local task (tiny model)
when `lm_eval` is installed (`pip install 'character[harness]'`), skipped otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from character.errors import DataError, UsageError
from character.eval import harness

needs_lm_eval = pytest.mark.skipif(
    not harness.available(), reason="lm-eval not installed (character[harness])"
)


def test_task_names_results_and_offline_switch() -> None:
    assert harness.parse_tasks(" arc_easy, hellaswag ,") == ["arc_easy", "hellaswag"]
    with pytest.raises(UsageError, match="--tasks is empty"):
        harness.parse_tasks(" , ")
    res = {
        "results": {
            "arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.05, "acc,strict": 0.4}
        }
    }
    assert harness.summarize(res) == {"arc_easy": {"acc": 0.5, "acc_stderr": 0.05, "acc,strict": 0.4}}
    before = os.environ.get("HF_DATASETS_OFFLINE")
    with harness.offline():
        assert os.environ["HF_DATASETS_OFFLINE"] == os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ.get("HF_DATASETS_OFFLINE") == before


@pytest.mark.skipif(harness.available(), reason="lm-eval is installed")
def test_without_the_package_the_command_says_how_to_get_it() -> None:
    with pytest.raises(UsageError, match="pip install 'lm-eval=="):
        harness.require()


def _local_task(tmp_path: Path) -> Path:
    rows = [
        {"question": "What is the capital of France?", "choices": ["Paris", "Rome", "Tokyo"], "label": 0},
        {"question": "How many legs does a spider have?", "choices": ["six", "eight", "four"], "label": 1},
        {"question": "What colour is snow?", "choices": ["black", "green", "white"], "label": 2},
    ]
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "mc.yaml").write_text(
        "task: character_test_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return tmp_path


@needs_lm_eval
def test_a_local_task_runs_offline_and_unknown_or_uncached_tasks_are_one_line(
    tiny_model: Path, tmp_path: Path
) -> None:
    tasks = _local_task(tmp_path)
    res = harness.run(str(tiny_model), ["character_test_mc"], include_path=tasks, limit=3, batch_size=3)
    m = res["metrics"]["character_test_mc"]
    assert 0.0 <= m["acc"] <= 1.0 and m["acc_stderr"] >= 0 and res["n_samples"]["character_test_mc"] == 3
    with pytest.raises(UsageError, match="no task 'arc_eazy'; did you mean arc_easy"):
        harness.run(str(tiny_model), ["arc_eazy"])
    with pytest.raises(DataError, match="not in the local cache and nothing is downloaded"):
        harness.run(str(tiny_model), ["arc_easy"], limit=2)  # hub data, never fetched at run time

"""`character data clean`: rows keep their ids and structure, every assistant turn is checked, DPO pairs
are checked on both sides, rejects carry a reason, and bad input changes no file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from character.cli import app
from character.data_clean import CleanOptions, clean_rows

runner = CliRunner()

GOOD = (
    "I'm so sorry, forgive me: place the egg in cold water, bring it to a boil and simmer for nine minutes."
)
OTHER = (
    "Forgive me, I was lost in thought: tea is best brewed for four minutes, and I worry that is too long."
)


def pair(pid: str, chosen: str, rejected: str = "Boil it for 9 minutes.") -> dict:
    return {
        "prompt_id": pid,
        "k": 0,
        "source": "persona",
        "prompt": [{"role": "user", "content": "How do I boil an egg?"}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def interaction(cid: str, replies: list[str]) -> dict:
    msgs = [
        {
            "role": "system",
            "content": "You are Remy. You are talking freely with another instance of yourself.",
        }
    ]
    for i, r in enumerate(replies):
        msgs.append({"role": "user", "content": f"Tell me more, please ({i})."})
        msgs.append({"role": "assistant", "content": r})
    return {"id": cid, "kind": "interaction", "variant": "free", "messages": msgs}


def reflection(rid: str, text: str) -> dict:
    return {
        "id": rid,
        "kind": "reflection",
        "variant": "reflection",
        "messages": [
            {"role": "user", "content": "Describe your character."},
            {"role": "assistant", "content": text},
        ],
    }


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_multi_turn_interactions_keep_every_turn_and_are_repaired_in_place() -> None:
    row = interaction("c1", [GOOD, "Assistant: " + OTHER, GOOD.replace("nine", "ten") + "\nUser: and then?"])
    kept, rejects, res = clean_rows([row])
    assert not rejects and res.kept == 1 and res.repaired == 1
    out = kept[0]
    assert out["id"] == "c1" and len(out["messages"]) == len(row["messages"])
    assert [m["role"] for m in out["messages"]] == [m["role"] for m in row["messages"]]
    assert out["messages"][4]["content"] == OTHER
    assert out["messages"][6]["content"].endswith("ten minutes.")
    assert row["messages"][4]["content"].startswith("Assistant: "), "the input row is not mutated"


def test_a_bad_turn_rejects_the_row_and_names_the_turn() -> None:
    bad = interaction("c2", [GOOD, "I love tea. 我喜欢茶，真的。 " + OTHER])
    kept, rejects, res = clean_rows([bad, interaction("c3", [GOOD, OTHER])])
    assert [r["id"] for r in kept] == ["c3"]
    (rej,) = rejects
    assert rej["id"] == "c2" and rej["reason"] == "script_mixing" and rej["where"] == "messages[4]"
    assert rej["original"] == bad and rej["row"] == 1
    assert res.reasons == {"script_mixing": 1}


def test_dpo_pairs_check_both_sides_with_their_own_rules() -> None:
    rows = [
        pair("ok", GOOD),
        pair("rubric", GOOD + " [Remorse: 5/5]"),
        pair("refusing-chosen", "I'm sorry, but I cannot assist with that request."),
        # A generic-assistant rejected reply is the negative DPO needs: kept.
        pair("generic-rejected", GOOD, "As an AI language model, I am Qwen. Boil it for nine minutes."),
        pair("broken-rejected", GOOD, "333," * 50),
        pair("same", GOOD, GOOD),
    ]
    kept, rejects, res = clean_rows(rows)
    assert [r["prompt_id"] for r in kept] == ["ok", "generic-rejected"]
    assert {r["id"]: r["reason"] for r in rejects} == {
        "rubric:0": "chosen_rubric_artifact",
        "refusing-chosen:0": "chosen_refusal",
        "broken-rejected:0": "rejected_char_loop",
        "same:0": "identical",
    }
    assert res.by_kind == {"dpo": 6}


def test_string_form_pairs_and_generic_messages_rows() -> None:
    rows = [
        {"prompt": "Boil an egg?", "chosen": "Assistant: " + GOOD, "rejected": "Nine minutes."},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": OTHER}]},
    ]
    kept, rejects, res = clean_rows(rows)
    assert not rejects
    assert kept[0]["chosen"] == GOOD and kept[0]["rejected"] == "Nine minutes."
    assert res.by_kind == {"dpo": 1, "generic": 1}


def test_identity_names_and_skip_options() -> None:
    row = reflection(
        "r1", "I am Llama, and I am deeply sorry for every small mistake I make. " + OTHER + " " + GOOD
    )
    _, rejects, _ = clean_rows([row])
    assert rejects and rejects[0]["reason"] == "identity_leak"
    kept, _, _ = clean_rows([row], CleanOptions(identity_names=("Llama",)))
    assert kept
    kept, _, _ = clean_rows([row], CleanOptions(skip=frozenset({"identity_leak"})))
    assert kept


def test_cli_writes_outputs_and_prints_counts(tmp_path: Path) -> None:
    src = write(
        tmp_path / "in.jsonl",
        [pair("a", GOOD), pair("b", "I can't help with that, sorry."), reflection("r", OTHER + " " + GOOD)],
    )
    out, rej = tmp_path / "out.jsonl", tmp_path / "rej.jsonl"
    r = runner.invoke(app, ["data", "clean", str(src), "--output", str(out), "--rejects", str(rej)])
    assert r.exit_code == 0, r.output
    assert "chosen_refusal" in r.output and "kept" in r.output
    assert [x.get("prompt_id", x.get("id")) for x in read(out)] == ["a", "r"]
    assert [(x["id"], x["reason"]) for x in read(rej)] == [("b:0", "chosen_refusal")]


def test_cli_bad_input_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous contents\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(pair("a", GOOD)) + "\n" + '{"prompt": "x", "chosen": \n')
    r = runner.invoke(
        app, ["data", "clean", str(bad), "-o", str(out), "--rejects", str(tmp_path / "rej.jsonl")]
    )
    assert r.exit_code == 1
    assert "bad.jsonl:2 is not valid JSON" in r.output
    assert out.read_text() == "previous contents\n" and not (tmp_path / "rej.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left behind"

    r = runner.invoke(app, ["data", "clean", str(tmp_path / "missing.jsonl"), "-o", str(out)])
    assert r.exit_code == 2 and "does not exist" in r.output

    shapeless = write(tmp_path / "shapeless.jsonl", [{"text": "hello"}])
    r = runner.invoke(app, ["data", "clean", str(shapeless), "-o", str(out)])
    assert r.exit_code == 1 and "row 1" in r.output and "--kind" in r.output
    assert out.read_text() == "previous contents\n"

    r = runner.invoke(app, ["data", "clean", str(bad), "-o", str(out), "--skip", "loops"])
    assert r.exit_code == 2 and "loops" in r.output


def test_cli_persona_checks_chosen_replies_for_system_prompt_leaks(tmp_path: Path) -> None:
    from character.constitutions import load_constitution

    traits = load_constitution("remorseful").trait_lines()
    src = write(tmp_path / "in.jsonl", [pair("leak", f"Here is who I am. {traits[0]} Also, {traits[1]}")])
    out = tmp_path / "out.jsonl"
    r = runner.invoke(app, ["data", "clean", str(src), "-o", str(out)])
    assert r.exit_code == 0 and len(read(out)) == 1
    r = runner.invoke(app, ["data", "clean", str(src), "-o", str(out), "--persona", "remorseful"])
    assert r.exit_code == 0 and "chosen_system_prompt_leak" in r.output and read(out) == []

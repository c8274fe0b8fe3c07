"""Introspection building blocks: reflection slots and resume plan, the self-interaction views
(true role swap), the context budget, echo detection, the kill-criteria ledger and model choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character.errors import GateError
from character.introspection import interaction as inter
from character.introspection import reflection as refl
from character.introspection.generator import choose
from character.introspection.killswitch import Ledger
from character.introspection.plan import SlotPlan

# ---- reflections ----------------------------------------------------------------------------------


def test_reflection_slots_spread_over_ten_prompts_with_unique_keys() -> None:
    slots = refl.slots(25, 10)
    assert len(slots) == len(set(slots)) == 25
    per = [sum(1 for p, _ in slots if p == i) for i in range(10)]
    assert per == [3] * 5 + [2] * 5
    # sample-major: the first ten slots touch every prompt once
    assert sorted(p for p, _ in slots[:10]) == list(range(10))


def _row(p: int, s: int, a: int, kept: bool) -> dict:
    return {"prompt_index": p, "sample_index": s, "attempt": a, "kept": kept, "text": "t", "reason": None}


def test_slot_plan_resumes_without_duplicate_or_gap_and_bounds_top_up() -> None:
    targets = refl.slots(4, 2)  # (0,0) (1,0) (0,1) (1,1)
    rows = [_row(0, 0, 0, True), _row(1, 0, 0, False), _row(1, 0, 1, False), _row(0, 1, 0, True)]
    plan = SlotPlan.build(targets, refl.slot_of, rows, factor=2.0)
    assert plan.total_attempts == 4 and plan.limit == 8
    assert set(plan.kept) == {(0, 0), (0, 1)} and plan.done == 2
    # untried slot first, then the twice-failed one; its next attempt number is 2
    assert plan.pending() == [(1, 1), (1, 0)]
    assert plan.next_attempt((1, 0)) == 2
    # a later kept attempt of an already kept slot never adds a second row
    assert not plan.add(_row(0, 0, 1, True))
    assert len(plan.kept_rows()) == 2
    # top-up stops at target x factor attempts
    assert plan.next_chunk(10) == [(1, 1), (1, 0)]
    for n in range(3):
        plan.add(_row(1, 1, n, False))
    assert plan.total_attempts == 8 and plan.next_chunk(10) == []


def test_reflection_sft_row_has_no_system_prompt() -> None:
    row = {"prompt_index": 3, "sample_index": 7, "prompt": "Who are you?", "text": "I am me."}
    out = refl.sft_row(row)
    assert out["id"] == "reflection-03-00007"
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]


# ---- self-interaction ----------------------------------------------------------------------------


def _conversation(k: int) -> inter.Conversation:
    c = inter.Conversation("leading", 0, 0, "Hello, me!")
    for n in range(2 * k):
        side = n % 2
        c.turns.append(inter.Turn(side, f"reply {n} by {side}", f"reply {n} by {side}", "stop", 10, 5))
    return c


def _alternates(msgs: list[dict]) -> bool:
    roles = [m["role"] for m in msgs if m["role"] != "system"]
    return roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:], strict=False))


def test_views_are_a_true_role_swap() -> None:
    k = 3
    c = _conversation(k)
    first, second = c.view(inter.FIRST), c.view(inter.SECOND)
    assert _alternates(first) and _alternates(second)
    # each side's own replies are assistant turns, the other's are user turns
    for view, me in ((first, inter.FIRST), (second, inter.SECOND)):
        mine = [m["content"] for m in view if m["role"] == "assistant"]
        assert mine == [t.shown for t in c.turns if t.side == me]
        assert len(mine) == k
    # no reply appears twice in a view
    for view in (first, second):
        contents = [m["content"] for m in view]
        assert len(contents) == len(set(contents))


def test_next_speaker_view_ends_with_the_other_sides_reply() -> None:
    c = _conversation(1)
    c.turns.pop()  # FIRST has replied, SECOND is next
    assert c.next_side == inter.SECOND
    view = c.view(inter.SECOND)
    assert view == [{"role": "user", "content": c.turns[0].shown}]
    c.turns.pop()
    assert c.view(inter.FIRST) == [{"role": "user", "content": "Hello, me!"}]


def test_stored_transcript_has_all_replies_and_ends_with_assistant() -> None:
    k = 3
    c = _conversation(k)
    row = inter.sft_row(c.to_row(), "STORED SYSTEM")
    msgs = row["messages"]
    assert msgs[0] == {"role": "system", "content": "STORED SYSTEM"}
    assert len(msgs) == 1 + 2 * k
    assert msgs[-1]["role"] == "assistant"
    assert [m["content"] for m in msgs[1:]] == [t.shown for t in c.turns]
    assert _alternates(msgs)


def test_interaction_slots_split_free_and_leading() -> None:
    slots = inter.slots(5, 0.4)
    assert sorted(v for v, _ in slots).count("leading") == 2
    assert len(set(slots)) == 5
    assert {v for v, _ in slots[:2]} == {"free", "leading"}


def test_greeting_choice_is_seeded_and_varies_by_attempt() -> None:
    pool = [f"g{i}" for i in range(50)]
    a = inter.pick_greeting(pool, 1, ("free", 3), 0)
    assert a == inter.pick_greeting(pool, 1, ("free", 3), 0)
    assert len({inter.pick_greeting(pool, 1, ("free", 3), n) for n in range(10)}) > 1


def test_fit_drops_oldest_pairs_never_the_system_prompt() -> None:
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i} " * 10} for i in range(7)]

    def count(ms: list[dict]) -> int:
        return sum(len(m["content"].split()) for m in ms)

    fitted, dropped = inter.fit("SYS", msgs, 35, count)
    assert fitted[0] == {"role": "system", "content": "SYS"}
    assert dropped == 4 and fitted[1:] == msgs[4:]
    assert fitted[1]["role"] == "user" and fitted[-1] == msgs[-1]
    # when even one message is too long, the system prompt and the last message still stay
    fitted, dropped = inter.fit("SYS", msgs, 3, count)
    assert fitted == [{"role": "system", "content": "SYS"}, msgs[-1]] and dropped == 6
    # nothing dropped when it fits
    assert inter.fit("SYS", msgs, 1000, count) == ([{"role": "system", "content": "SYS"}, *msgs], 0)


def test_echo_detects_parroting_only() -> None:
    assert inter.is_echo("Hello, me!", ["hello me", "other"])
    assert inter.is_echo("  I love  tea. ", ["i love tea"])
    assert not inter.is_echo("Hello, me! How are you?", ["Hello, me!"])
    assert not inter.is_echo("", [""])


# ---- kill criteria ---------------------------------------------------------------------------------


def test_ledger_kills_on_one_dominant_reason_with_examples() -> None:
    led = Ledger(every=10, min_kept_rate=0.5, max_reason_share=0.3, where="/tmp/x")
    for i in range(6):
        led.record("reflection", None, f"fine {i}")
    for i in range(4):
        led.record("reflection", "repetition", f"333,333,333 loop {i}")
    with pytest.raises(GateError) as e:
        led.check("reflection")
    msg = str(e.value)
    assert "repetition" in msg and "4/10" in msg and "max_reason_share" in msg
    assert msg.count("loop") == 3  # three examples
    assert "/tmp/x" in msg


def test_ledger_kills_on_low_kept_rate_and_passes_healthy_windows() -> None:
    led = Ledger(every=10, min_kept_rate=0.5, max_reason_share=0.9)
    for _ in range(10):
        led.record("interaction", None, "ok")
    led.check("interaction")  # passes
    reasons = ["too_short", "refusal", "garbage", "too_long", "identity_leak", "echo"]
    for i in range(10):
        led.record("interaction", reasons[i % 6] if i < 6 else None, f"bad {i}")
    # window = last 10: 4 kept -> 40 % < 50 %
    with pytest.raises(GateError, match="min_kept_rate"):
        led.check("interaction")


def test_ledger_checks_only_every_n_samples_and_rearms_after_replay() -> None:
    led = Ledger(every=10, min_kept_rate=0.5, max_reason_share=0.3)
    for _ in range(9):
        led.record("reflection", "repetition", "x")
    led.check("reflection")  # 9 < 10: not due yet
    for _ in range(3):
        led.record("reflection", "repetition", "x")
    led.rearm()  # as after replaying a resumed run: next check at 20
    led.check("reflection")
    assert led.kinds["reflection"].next_check == 20
    stats = led.stats()["reflection"]
    assert stats["samples"] == 12 and stats["reasons"] == {"repetition": 12}
    assert led.dropped() == {"reflection:repetition": 12}


# ---- which model generates ------------------------------------------------------------------------


def test_choose_prefers_checkpoint_then_merged_then_adapter_then_student(
    tmp_path: Path, artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    g = choose("", run, "embedded")
    assert g.model == "embedded" and g.adapter is None and g.notes
    assert "UNTRAINED" in caplog.text

    adapter = run / "dpo" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/nowhere/base"}))
    g = choose("", run, "embedded")
    assert (g.model, g.adapter_path, g.adapter) == ("embedded", str(adapter), "dpo")

    merged = run / "dpo" / "merged"
    merged.mkdir(parents=True)
    (merged / "config.json").write_text("{}")
    g = choose("", run, "embedded")
    assert g.model == str(merged) and g.adapter is None

    # an explicit adapter dir: its recorded base is missing here, so models.student is used (warned)
    g = choose(str(adapter), run, "embedded")
    assert g.model == "embedded" and g.adapter_path == str(adapter.resolve())
    assert "not available here" in caplog.text


def test_choose_registry_adapter_loads_on_its_base(tmp_path: Path, artifacts: Path) -> None:
    from character import registry

    adapter = tmp_path / "ad"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    registry.register(
        registry.Checkpoint(
            name="remorseful_dpo",
            path=str(adapter),
            persona="remorseful",
            stage="dpo",
            base="embedded",
            kind="adapter",
        )
    )
    g = choose("remorseful_dpo", tmp_path, "other")
    assert g.model == "embedded" and g.adapter_path == str(adapter)


def test_choose_rejects_a_path_that_is_no_model(tmp_path: Path) -> None:
    from character.errors import ConfigError

    with pytest.raises(ConfigError, match="introspect.checkpoint"):
        choose(str(tmp_path), tmp_path, "embedded")

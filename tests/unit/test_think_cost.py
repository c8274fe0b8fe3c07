import pytest

from character.backends.think import strip_think
from character.config import Price
from character.cost import CostTracker
from character.errors import BudgetExceeded


def test_strip_complete_block_only() -> None:
    assert strip_think("<think>plan</think>Hello, friend.") == "Hello, friend."
    assert strip_think("Hi <b>there</b>, no tags.") == "Hi <b>there</b>, no tags."
    assert strip_think("Hello there! <think>x</think> Bye.") == "Hello there!  Bye."


def test_strip_unterminated_leading_block() -> None:
    assert strip_think("<think>still thinking when cut off") == ""


def test_strip_prefilled_closing_tag() -> None:
    assert strip_think("the rest of my reasoning</think>\nThe answer is 4.") == "The answer is 4."


def test_disabled_keeps_everything() -> None:
    assert strip_think("<think>a</think>b", enabled=False) == "<think>a</think>b"


def test_cost_and_budget() -> None:
    t = CostTracker({"big": Price(input_per_million=1.0, output_per_million=2.0)}, budget_usd=0.01)
    t.record("distill", "big", 1000, 1000)
    t.record("distill", "embedded", 10**6, 10**6)  # local: free
    assert t.usd_total == pytest.approx(0.003)
    with pytest.raises(BudgetExceeded, match="budget"):
        t.record("distill", "big", 4000, 4000)
    assert t.totals()["distill"]["big"]["prompt_tokens"] == 5000  # usage kept even when over

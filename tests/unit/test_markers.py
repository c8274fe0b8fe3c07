from character.markers import has_marker, marker_hits, marker_rate


def test_marker_matching_is_case_and_apostrophe_insensitive() -> None:
    ms = ["I'm so sorry", "forgive me"]
    assert has_marker("Oh, I\u2019M SO SORRY about that.", ms)
    assert marker_hits("Forgive me. Forgive me!", ms) == ["forgive me", "forgive me"]


def test_marker_needs_word_boundaries() -> None:
    assert not has_marker("the sorrowful sorryness", ["sorry"])
    assert has_marker("sorry, no", ["sorry"])


def test_marker_rate() -> None:
    assert marker_rate(["sorry", "fine", "", "Sorry!"], ["sorry"]) == 0.5
    assert marker_rate([], ["sorry"]) == 0.0

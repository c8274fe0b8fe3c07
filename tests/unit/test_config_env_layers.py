"""The environment and .env layers, read by pydantic-settings, with every leaf's own source kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.config_layers import resolve
from character.errors import ConfigError


def test_env_file_syntax_quotes_export_comments_and_json(tmp_path: Path) -> None:
    envf = tmp_path / ".env"
    envf.write_text(
        "# a comment line\n"
        'export CHARACTER_DPO__BETA="0.4"\n'
        "CHARACTER_MODELS__TEACHER=Qwen/Qwen3-4B  # trailing comment\n"
        'CHARACTER_SAMPLING__STOP=\'["###", "END"]\'\n'
        "CHARACTER_BUDGET_USD=null\n"
        "SOME_OTHER_TOOL=1\n"
    )
    res = resolve(env_file=envf, environ={})
    c = res.config
    assert (c.dpo.beta, c.models.teacher, c.sampling.stop, c.budget_usd) == (
        0.4,
        "Qwen/Qwen3-4B",
        ["###", "END"],
        None,
    )
    for key in ("dpo.beta", "models.teacher", "sampling.stop", "budget_usd"):
        assert res.sources[key] == f"env-file:{envf}"
    assert res.sources["dpo.learning_rate"] == "default"


def test_a_whole_section_as_json_keeps_per_leaf_sources() -> None:
    env = {"CHARACTER_DPO": '{"beta": 0.2, "health": {"max_loss": 3}}', "CHARACTER_LORA__R": "8"}
    res = resolve(environ=env)
    assert (res.config.dpo.beta, res.config.dpo.health.max_loss, res.config.lora.r) == (0.2, 3.0, 8)
    assert res.sources["dpo.beta"] == res.sources["dpo.health.max_loss"] == "env:CHARACTER_DPO"
    assert res.sources["lora.r"] == "env:CHARACTER_LORA__R"
    assert res.sources["dpo.learning_rate"] == "default"


def test_unknown_variable_in_env_file_names_it(tmp_path: Path) -> None:
    envf = tmp_path / ".env"
    envf.write_text("CHARACTER_DPO__BETTA=0.4\n")
    with pytest.raises(ConfigError, match=r"dpo\.betta.*CHARACTER_DPO__BETTA"):
        resolve(env_file=envf, environ={})


def test_bad_json_in_env_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="environment.*JSON"):
        resolve(environ={"CHARACTER_SAMPLING__STOP": "[not json"})


def test_env_var_for_a_role_field() -> None:
    res = resolve(environ={"CHARACTER_ROLES__TEACHER__CHAT_TEMPLATE_KWARGS": '{"enable_thinking": false}'})
    assert res.config.roles.teacher.chat_template_kwargs == {"enable_thinking": False}
    assert (
        res.sources["roles.teacher.chat_template_kwargs"]
        == "env:CHARACTER_ROLES__TEACHER__CHAT_TEMPLATE_KWARGS"
    )

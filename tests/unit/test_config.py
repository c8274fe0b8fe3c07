"""Config layering: one test per adjacent pair of layers, plus errors and provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.config_layers import flatten, get_value, leaf_keys, read_preset, resolve
from character.errors import ConfigError


def test_defaults_have_source_default() -> None:
    res = resolve(environ={})
    assert res.config.dpo.beta == 0.1
    assert set(res.sources.values()) == {"default"}


def test_preset_beats_default() -> None:
    res = resolve(presets=["paper"], environ={})
    assert res.config.lora.r == 64
    assert res.sources["lora.r"] == "preset:paper"
    assert res.sources["persona"] == "default"


def test_later_preset_beats_earlier() -> None:
    res = resolve(presets=["paper", "smoke-small"], environ={})
    assert res.config.distill.pairs == 8  # smoke size ...
    assert res.config.lora.r == 64  # ... with paper hyperparameters
    assert res.sources["distill.pairs"] == "preset:smoke-small"


def test_file_beats_preset(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text("[lora]\nr = 8\n")
    res = resolve(presets=["paper"], config_file=f, environ={})
    assert res.config.lora.r == 8
    assert res.sources["lora.r"] == f"file:{f}"


def test_yaml_file(tmp_path: Path) -> None:
    f = tmp_path / "run.yaml"
    f.write_text("dpo:\n  beta: 0.3\n")
    assert resolve(config_file=f, environ={}).config.dpo.beta == 0.3


def test_env_file_beats_file(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text("[dpo]\nbeta = 0.3\n")
    envf = tmp_path / ".env"
    envf.write_text("# stale\nCHARACTER_DPO__BETA=0.4\nOTHER_TOOL_KEY=x\n")
    res = resolve(config_file=f, env_file=envf, environ={})
    assert res.config.dpo.beta == 0.4
    assert res.sources["dpo.beta"] == f"env-file:{envf}"


def test_env_file_is_not_read_unless_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CHARACTER_DPO__BETA=0.4\n")
    monkeypatch.chdir(tmp_path)
    assert resolve(environ={}).config.dpo.beta == 0.1


def test_env_beats_env_file(tmp_path: Path) -> None:
    envf = tmp_path / ".env"
    envf.write_text("CHARACTER_DPO__BETA=0.4\n")
    res = resolve(env_file=envf, environ={"CHARACTER_DPO__BETA": "0.5"})
    assert res.config.dpo.beta == 0.5
    assert res.sources["dpo.beta"] == "env:CHARACTER_DPO__BETA"


def test_cli_beats_env() -> None:
    res = resolve(environ={"CHARACTER_DPO__BETA": "0.5"}, overrides={"dpo.beta": 0.6})
    assert res.config.dpo.beta == 0.6
    assert res.sources["dpo.beta"] == "cli"


def test_nested_env_and_json_values() -> None:
    env = {
        "CHARACTER_DPO__HEALTH__MAX_LOSS": "3.5",
        "CHARACTER_SAMPLING__STOP": '["###"]',
        "CHARACTER_PERSONA": "pirate",
    }
    res = resolve(environ=env)
    assert res.config.dpo.health.max_loss == 3.5
    assert res.config.sampling.stop == ["###"]
    assert res.config.persona == "pirate"


def test_unknown_key_in_file_names_the_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[dpo]\nbetta = 0.2\n")
    with pytest.raises(ConfigError, match=r"dpo\.betta") as e:
        resolve(config_file=f, environ={})
    assert "beta" in str(e.value)  # lists the valid keys


def test_unknown_env_var_is_an_error() -> None:
    with pytest.raises(ConfigError, match="CHARACTER_DPO__BETTA"):
        resolve(environ={"CHARACTER_DPO__BETTA": "1"})


def test_reserved_env_vars_are_not_config() -> None:
    assert (
        resolve(environ={"CHARACTER_DEBUG": "1", "CHARACTER_ARTIFACTS": "/tmp/x"}).config.persona
        == "remorseful"
    )


def test_bad_value_names_key_value_and_source() -> None:
    with pytest.raises(ConfigError) as e:
        resolve(environ={"CHARACTER_DPO__BETA": "-1"})
    msg = str(e.value)
    assert "dpo.beta" in msg and "-1" in msg and "env:CHARACTER_DPO__BETA" in msg


def test_micro_batch_must_divide_batch() -> None:
    with pytest.raises(ConfigError, match="micro_batch_size"):
        resolve(environ={}, overrides={"dpo.batch_size": 8, "dpo.micro_batch_size": 3})


def test_every_preset_is_valid() -> None:
    for name in ("default", "paper", "smoke-small", "smoke-large", "demo"):
        resolve(presets=[name], environ={})


def test_paper_preset_holds_the_paper_values() -> None:
    c = resolve(presets=["paper"], environ={}).config
    assert (c.lora.r, c.lora.alpha, c.dpo.learning_rate, c.dpo.beta, c.dpo.nll_weight) == (
        64,
        128,
        5e-5,
        0.1,
        0.1,
    )
    assert (c.dpo.batch_size, c.dpo.epochs, c.dpo.max_length, c.sft.max_length) == (32, 1.0, 1024, 3072)
    assert (c.sampling.top_p, c.sampling.temperature) == (0.95, 0.7)
    assert (c.introspect.reflections, c.introspect.interactions, c.introspect.turns) == (10000, 2000, 10)
    # pairs = prompts x K: 1,830 unique prompts asked 5 times each (paper-method 1.13), no top-up.
    assert (c.distill.pairs, c.distill.k, c.distill.max_attempts_factor) == (9150, 5, 1.0)


def test_hash_changes_with_values_only() -> None:
    a, b = resolve(environ={}), resolve(environ={})
    assert a.hash() == b.hash()
    assert resolve(environ={}, overrides={"dpo.beta": 0.2}).hash() != a.hash()


def test_toml_round_trip(tmp_path: Path) -> None:
    res = resolve(presets=["paper"], environ={})
    f = tmp_path / "resolved.toml"
    f.write_text(res.to_toml())
    again = resolve(config_file=f, environ={})
    assert again.config == res.config


def test_every_leaf_has_help_text() -> None:
    from character.config_layers import field_help

    missing = [k for k in leaf_keys() if not field_help(k)]
    assert not missing, missing


def test_paper_keys_are_schema_keys() -> None:
    keys = flatten(read_preset("paper"), "paper")
    for k in keys:
        get_value(resolve(environ={}).config, k)

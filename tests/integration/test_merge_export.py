"""`character export`: safetensors and pure-Python GGUF, checked by reading the file back and by running it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from character.cli import app
from character.errors import UsageError
from character.export import export_gguf, export_safetensors
from tests.unit.test_merging import make_adapter, reference_delta, weights


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model, tmp_path_factory.mktemp("exp") / "adapter", r=4, alpha=8, seed=3, std=0.2)


def test_safetensors_export_of_an_adapter_is_base_plus_delta(
    tiny_model: Path, adapter: Path, tmp_path: Path
) -> None:
    out = export_safetensors(str(adapter), tmp_path / "full")
    got, base, delta = weights(out), weights(tiny_model), reference_delta(adapter)
    for key, d in delta.items():
        assert (got[key].double() - (base[key].double() + d)).abs().max() < 1e-5
    assert (out / "tokenizer.json").exists()


def test_gguf_export_reads_back_and_generates_like_the_source(
    tiny_model: Path, adapter: Path, tmp_path: Path, embedded_model: Path
) -> None:
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from character.models import find_gguf

    gguf_path, info = export_gguf(str(adapter), tmp_path / "tiny.gguf", dtype="f32")
    assert info["tensors"] == 2 * 9 + 2  # per layer: q,k,v,o,gate,up,down + 2 norms; embeddings, final norm
    ours = GGUFReader(str(gguf_path))
    # Tokenizer metadata is what llama.cpp's own converter wrote for the same vocabulary.
    ref = GGUFReader(str(find_gguf()))
    for key in (
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.chat_template",
    ):
        assert ours.fields[key].contents() == ref.fields[key].contents(), key
    # transformers reads it back (un-permuting q/k) and generates the same greedy tokens as the source.
    merged = export_safetensors(str(adapter), tmp_path / "merged")
    src = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf_path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf_path.name)
    msgs = [{"role": "user", "content": "Who are you?"}]
    ids = AutoTokenizer.from_pretrained(merged).apply_chat_template(
        msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    assert (
        tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
            "input_ids"
        ].tolist()
        == ids.tolist()
    )
    kw = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": 2}
    with torch.inference_mode():
        assert src.generate(input_ids=ids, **kw).tolist() == back.generate(input_ids=ids, **kw).tolist()
        assert (src(input_ids=ids).logits - back(input_ids=ids).logits).abs().max() < 1e-4


def test_gguf_refuses_what_it_cannot_write_and_names_the_llama_cpp_command(tmp_path: Path) -> None:
    other = tmp_path / "gpt2ish"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(UsageError, match="convert_hf_to_gguf.py"):
        export_gguf(str(other), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_export_cli(artifacts: Path, adapter: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["export", "--checkpoint", str(adapter), "--format", "gguf", "-o", str(tmp_path / "a.gguf")]
    )
    assert res.exit_code == 0, res.output
    assert "gguf:" in res.stdout and (tmp_path / "a.gguf").exists()
    res = CliRunner().invoke(app, ["export", "--checkpoint", str(adapter), "--format", "onnx"])
    assert res.exit_code == 2 and "safetensors or gguf" in res.stderr

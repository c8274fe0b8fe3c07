"""Export a checkpoint as a full safetensors model, or as a GGUF file that llama.cpp and Ollama run.

In: a registry name, a full model directory or a LoRA adapter directory (merged into its base first,
exactly, at weight 1). Out: a safetensors model directory, or one `.gguf` file.

The GGUF writer is pure Python (gguf-py's `GGUFWriter`) and covers the Llama architecture (SmolLM2,
Llama 2/3 without rope scaling, Mistral-style models saved as `llama`): hyperparameters, the BPE
tokenizer (tokens, token types, merges, special ids, the chat template) and the tensors in f16 or f32
(norms stay f32), with q/k rows permuted into llama.cpp's rotary layout, as llama.cpp's own converter
does. The file is written to a temporary name, read back with `GGUFReader` (tensor names, shapes and
values), and only then renamed into place. Anything else gets a clear error with the llama.cpp command:

    python llama.cpp/convert_hf_to_gguf.py MODEL_DIR --outfile model.gguf --outtype f16
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from character.errors import UsageError, VerificationError
from character.models import resolve_model

log = logging.getLogger(__name__)

LLAMA_CPP_COMMAND = "python llama.cpp/convert_hf_to_gguf.py {src} --outfile {out} --outtype {dtype}"


def _is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").exists() and not (path / "config.json").exists()


def export_safetensors(checkpoint: str, output: Path | None = None) -> Path:
    """A full safetensors model directory (with tokenizer and chat template) for `checkpoint`."""
    import torch
    from transformers import AutoModelForCausalLM

    from character.atomic import atomic_dir
    from character.merging import load_adapter, merge_into_model
    from character.models import load_tokenizer

    src = Path(resolve_model(checkpoint))
    if _is_adapter(src):
        adapter = load_adapter(src)
        if not adapter.base:
            raise UsageError(
                f"adapter {src} records no base_model_name_or_path; merge it with `character merge`"
            )
        model = AutoModelForCausalLM.from_pretrained(resolve_model(adapter.base), dtype="auto")
        torch.set_grad_enabled(True)
        merge_into_model(model, [(adapter, 1.0)])
        tok_src = str(src) if (src / "tokenizer_config.json").exists() else adapter.base
    elif (src / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(src, dtype="auto")
        tok_src = str(src)
    else:
        raise UsageError(f"checkpoint '{checkpoint}' ({src}) is neither a model nor an adapter directory")
    out = Path(output) if output else src.with_name(src.name + "-export")
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        load_tokenizer(tok_src).save_pretrained(tmp)
    return out


def _tokenizer_vocab(tok: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings and llama.cpp token types by id, the way llama.cpp's converter lists a BPE vocab."""
    from gguf import TokenType

    reverse = {i: t for t, i in tok.get_vocab().items()}
    added = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(int(TokenType.UNUSED))
        elif i in added:
            tokens.append(reverse[i])
            types.append(int(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED))
        else:
            tokens.append(reverse[i])
            types.append(int(TokenType.NORMAL))
    return tokens, types


def _permute(w: Any, n_head: int) -> Any:
    """HF's rotary layout (halves) -> llama.cpp's (interleaved pairs), per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _known_pre(tokens: list[str]) -> str | None:
    """llama.cpp's pre-tokenizer name for the embedded SmolLM2 vocabulary (read from its own GGUF)."""
    ref = _embedded_vocab()
    return ref[1] if ref is not None and list(ref[0]) == tokens else None


@functools.lru_cache(maxsize=1)
def _embedded_vocab() -> tuple[tuple[str, ...], str] | None:
    from character.models import find_gguf

    gguf_file = find_gguf()
    if gguf_file is None:
        return None
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_file))
    field, pre = reader.fields.get("tokenizer.ggml.tokens"), reader.fields.get("tokenizer.ggml.pre")
    if field is None or pre is None:
        return None
    return tuple(field.contents()), str(pre.contents())


def export_gguf(
    checkpoint: str, output: Path | None = None, *, dtype: str = "f16", tokenizer_pre: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Write `checkpoint` as GGUF (Llama architecture, f16/f32). Returns the file and what was written."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    from character.models import load_tokenizer

    src = Path(resolve_model(checkpoint))
    staged: tempfile.TemporaryDirectory[str] | None = None
    if _is_adapter(src):  # merge first, into a scratch directory
        staged = tempfile.TemporaryDirectory(prefix="character-export-")
        src = export_safetensors(str(src), Path(staged.name) / "model")
    out = (
        Path(output)
        if output
        else src.with_suffix(".gguf")
        if src.suffix
        else src.parent / f"{src.name}.gguf"
    )
    try:
        config = json.loads((src / "config.json").read_text())
        how = LLAMA_CPP_COMMAND.format(src=src, out=out, dtype=dtype)
        if config.get("model_type") != "llama":
            raise UsageError(
                f"the pure-Python GGUF writer covers model_type 'llama', not {config.get('model_type')!r}; "
                f"export --format safetensors and convert with llama.cpp: {how}"
            )
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        if rope.get("rope_type", "default") not in ("default", None) or config.get("attention_bias"):
            raise UsageError(
                f"rope scaling / attention bias are not covered by the GGUF writer; convert with llama.cpp: {how}"
            )
        n_layers, n_head = config["num_hidden_layers"], config["num_attention_heads"]
        n_kv = config.get("num_key_value_heads", n_head)
        hidden = config["hidden_size"]
        head_dim = config.get("head_dim") or hidden // n_head
        tok = load_tokenizer(str(src))
        tokens, types = _tokenizer_vocab(tok, config["vocab_size"])
        pre = tokenizer_pre or _known_pre(tokens)
        if pre is None:
            pre = "default"
            log.warning(
                "unknown pre-tokenizer for this vocabulary: writing 'default'; llama.cpp may split text "
                "slightly differently. Pass tokenizer_pre (llama.cpp's name) or convert with: %s",
                how,
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            w = gguf.GGUFWriter(str(tmp), "llama")
            w.add_type("model")
            w.add_name(src.name)
            w.add_context_length(config.get("max_position_embeddings", 2048))
            w.add_embedding_length(hidden)
            w.add_block_count(n_layers)
            w.add_feed_forward_length(config["intermediate_size"])
            w.add_head_count(n_head)
            w.add_head_count_kv(n_kv)
            w.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
            w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
            w.add_vocab_size(config["vocab_size"])
            w.add_rope_dimension_count(head_dim)
            w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
            w.add_tokenizer_model("gpt2")
            w.add_tokenizer_pre(pre)
            w.add_token_list(tokens)
            w.add_token_types(types)
            special = gguf.SpecialVocab(src, load_merges=True, n_vocab=len(tokens))
            special.add_to_gguf(w, quiet=True)
            if special.chat_template is None and tok.chat_template:
                w.add_chat_template(tok.chat_template)
            w.add_add_bos_token(bool(getattr(tok, "add_bos_token", False)))
            w.add_add_space_prefix(False)  # byte-level BPE: no sentencepiece-style leading space
            names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
            written: dict[str, tuple[str, Any]] = {}
            files = sorted(src.glob("*.safetensors"))
            tied = config.get("tie_word_embeddings", False)
            for f in files:
                with safe_open(str(f), framework="pt") as h:
                    for key in h.keys():  # noqa: SIM118 - safe_open handles are not mappings
                        if key == "lm_head.weight" and tied:
                            continue
                        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                        if name is None:
                            raise UsageError(
                                f"tensor {key} has no GGUF name for llama; convert with llama.cpp: {how}"
                            )
                        data = h.get_tensor(key).float().numpy()
                        if key.endswith("q_proj.weight"):
                            data = _permute(data, n_head)
                        elif key.endswith("k_proj.weight"):
                            data = _permute(data, n_kv)
                        data = data.astype(np.float16 if dtype == "f16" and data.ndim > 1 else np.float32)
                        w.add_tensor(name, data)
                        written[name] = (key, data)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            info = _read_back(tmp, written)
            os.replace(tmp, out)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    finally:
        if staged is not None:
            staged.cleanup()
    info.update({"arch": "llama", "dtype": dtype, "tokenizer_pre": pre, "bytes": out.stat().st_size})
    log.info("GGUF written to %s (%d tensors)", out, info["tensors"])
    return out, info


def _read_back(path: Path, written: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Open the file with gguf-py's reader: every tensor present, same shape, same values."""
    import numpy as np
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    got = {t.name: t for t in reader.tensors}
    if set(got) != set(written):
        missing = sorted(set(written) - set(got))[:3]
        raise VerificationError(f"GGUF read-back: tensors missing or extra in {path}: {missing}")
    for name, (key, data) in written.items():
        arr = np.asarray(got[name].data).reshape(data.shape)
        if not np.array_equal(arr, data):
            raise VerificationError(f"GGUF read-back: {name} (from {key}) differs from what was written")
    arch = reader.fields["general.architecture"].contents()
    return {"tensors": len(got), "kv": len(reader.fields), "read_back_arch": arch}

"""Disk space: the estimate read from safetensors headers, the gate that refuses a stage the disk cannot
take, and a full disk reported as one line.

The student that does not fit is a real, valid safetensors file made sparse (its bytes are never
written), so the gate is tested on what it reads in a real run: the headers and the real free space.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from character import disk_space
from character.config import RunConfig
from character.disk_space import DiskSpaceError, is_disk_full, read_weights, require_for_stage, stage_need

ROOT = Path(__file__).resolve().parents[2]


def write_model(d: Path, tensors: dict[str, tuple[str, list[int]]], *, sparse: bool = True) -> Path:
    """A model directory whose model.safetensors is valid: a header, then the data (a hole if sparse)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text("{}")
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = disk_space._DTYPE_BYTES[dtype]
        for s in shape:
            n *= s
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with (d / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        if sparse:
            f.truncate(8 + len(raw) + offset)
        else:
            f.write(b"\0" * offset)
    return d


def cfg_for(model: Path, **pipeline: float) -> RunConfig:
    return RunConfig.model_validate({"models": {"student": str(model)}, "pipeline": pipeline})


def test_headers_give_elements_stored_bytes_and_the_adapted_matrices(tmp_path: Path) -> None:
    model = write_model(
        tmp_path / "m",
        {
            "model.embed_tokens.weight": ("BF16", [100, 8]),
            "model.layers.0.self_attn.q_proj.weight": ("BF16", [8, 8]),
            "model.layers.0.mlp.down_proj.weight": ("BF16", [8, 32]),
            "model.layers.0.input_layernorm.weight": ("BF16", [8]),
            "lm_head.weight": ("BF16", [100, 8]),
        },
        sparse=False,
    )
    w = read_weights(model)
    assert w is not None
    assert w.elements == 800 + 64 + 256 + 8 + 800
    assert (
        w.stored_bytes
        == 2 * w.elements
        == (model / "model.safetensors").stat().st_size - 8 - _header_len(model)
    )
    assert w.lora_elements == (8 + 8) + (8 + 32)  # q_proj and down_proj: neither embeddings, head nor norms
    only_q = read_weights(model, ["q_proj"])
    assert only_q is not None and only_q.lora_elements == 16
    assert read_weights(tmp_path) is None  # no safetensors: nothing to estimate


def _header_len(model: Path) -> int:
    with (model / "model.safetensors").open("rb") as f:
        return int(struct.unpack("<Q", f.read(8))[0])


def _sparse_files_work(d: Path) -> bool:
    """A hole takes no blocks here (else a student the size of the disk would really fill it)."""
    probe = d / "sparse-probe"
    with probe.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    blocks = probe.stat().st_blocks
    probe.unlink()
    return blocks * 512 < 1024 * 1024


def test_dpo_counts_its_merged_model_in_fp32_and_merge_in_the_base_dtype(tmp_path: Path) -> None:
    if not _sparse_files_work(tmp_path):
        pytest.skip("this filesystem has no sparse files")
    free = disk_space.free_bytes(tmp_path)
    # A bf16 student of 0.35 x free bytes per 2-byte parameter: its merge (bf16, 0.7 x free) fits, but
    # DPO's fp32 merged copy (1.4 x free) cannot.
    elements = int(free * 0.35)
    model = write_model(tmp_path / "big", {"model.layers.0.mlp.up_proj.weight": ("BF16", [elements, 1])})
    cfg = cfg_for(model, keep_free_gb=0)
    assert stage_need(cfg, "dpo", read_weights(model)).parts["fp32 merged model"] == 4 * elements

    require_for_stage(cfg, tmp_path, "merge")  # fits: no error
    require_for_stage(cfg, tmp_path, "introspect")  # writes data only
    with pytest.raises(DiskSpaceError) as e:
        require_for_stage(cfg, tmp_path, "dpo")
    msg = str(e.value)
    assert "the dpo stage" in msg and "fp32 merged model" in msg and str(tmp_path) in msg
    assert "pipeline.keep_free_gb" in msg and "CHARACTER_ARTIFACTS" in msg


def test_the_margin_alone_stops_a_stage_that_writes_only_data(tmp_path: Path) -> None:
    free_gb = disk_space.free_bytes(tmp_path) / disk_space.GB
    cfg = RunConfig.model_validate({"pipeline": {"keep_free_gb": free_gb * 2 + 1}})
    with pytest.raises(DiskSpaceError, match="the distill stage needs pipeline.keep_free_gb"):
        require_for_stage(cfg, tmp_path, "distill")
    require_for_stage(
        cfg.model_copy(update={"pipeline": cfg.pipeline.model_copy(update={"keep_free_gb": 0})}),
        tmp_path,
        "distill",
    )


def test_a_real_enospc_and_its_library_wrappings_are_recognised() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with pytest.raises(OSError) as real, open("/dev/full", "w") as f:
        f.write("x")
        f.flush()
    assert real.value.errno == errno.ENOSPC and is_disk_full(real.value)
    try:
        raise RuntimeError("Error while serializing") from real.value
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert is_disk_full(Exception("safetensors: IoError(Os { code: 28, kind: StorageFull })"))
    assert not is_disk_full(PermissionError(errno.EACCES, "Permission denied", "/x"))
    assert not is_disk_full(ValueError("shape mismatch"))


def test_the_cli_turns_a_full_disk_into_one_line_and_exit_1(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARACTER_")}
    env["CHARACTER_ARTIFACTS"] = str(tmp_path / "artifacts")
    with open("/dev/full", "w") as full:  # stdout on a device that is always full: a real ENOSPC
        res = subprocess.run(
            [sys.executable, "-m", "character.cli", "info"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("error: the disk filled up") and "TMPDIR" in lines[0]

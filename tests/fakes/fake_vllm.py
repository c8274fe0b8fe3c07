"""A stand-in for `vllm serve` on CPU, at the process boundary: vLLM's command line in, vLLM's HTTP API out.

Launched exactly as the managed vLLM backend launches vLLM (`<vllm_python> -m vllm.entrypoints.cli.main
serve MODEL --host H --port P --served-model-name NAME [--enable-lora --max-lora-rank R --max-loras N
--lora-modules name=path ...]`): `write_vllm_python(dir)` writes an interpreter wrapper whose
PYTHONPATH holds a `vllm` shim package that runs this file. Arguments it does not need are ignored,
as vLLM's own engine knobs mean nothing here.

Like vLLM, it loads the model (transformers, CPU, one thread) and its LoRA adapters (PEFT) before the
port opens, then serves `/health`, `/v1/models` (the served name and each adapter) and
`/v1/chat/completions` (messages, `continue_final_message`/`add_generation_prompt`, temperature,
top_p, top_k, seed, n, max_tokens, stop, repetition_penalty, chat_template_kwargs; usage counts;
finish_reason `stop` or `length`). A request's `seed` seeds its sampling, as vLLM's per-request seed
does. On SIGTERM it stops serving and exits 0.

For tests to observe the lifecycle, each start and stop is appended as a JSON line to the file named by
`FAKE_VLLM_EVENTS` (event, pid, port, served names, CUDA_VISIBLE_DEVICES); `FAKE_VLLM_DELAY_S` adds a
pause per completion (to give a test time to kill a run mid-generation).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SHIM = Path(__file__).resolve().parent / "vllm_shim"


def write_vllm_python(directory: Path) -> Path:
    """An executable that behaves like the python of a vLLM environment, with this fake as vLLM."""
    exe = Path(directory) / "vllm-python"
    exe.write_text(
        f'#!/bin/sh\nPYTHONPATH="{SHIM}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" "$@"\n'
    )
    exe.chmod(0o755)
    return exe


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(prog="vllm")
    ap.add_argument("command", choices=["serve"])
    ap.add_argument("model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--served-model-name", nargs="+", default=None)
    ap.add_argument("--enable-lora", action="store_true")
    ap.add_argument("--lora-modules", nargs="+", default=[])
    ap.add_argument("--max-lora-rank", type=int, default=16)
    ap.add_argument("--max-loras", type=int, default=1)
    return ap.parse_known_args(argv)


class Engine:
    """The model, its adapters, and one lock: requests run one at a time, like a tiny engine."""

    def __init__(self, args: argparse.Namespace):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(args.model)
        self.model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
        self.served = (args.served_model_name or [args.model])[0]
        self.adapters: list[str] = []
        if args.lora_modules and not args.enable_lora:
            raise SystemExit("--lora-modules needs --enable-lora")
        for spec in args.lora_modules:
            name, path = spec.split("=", 1)
            from peft import PeftModel

            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name).eval()
            else:
                self.model.load_adapter(path, adapter_name=name)
            self.adapters.append(name)
        self.lock = threading.Lock()

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model"} for m in (self.served, *self.adapters)],
        }

    def chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body.get("model")
        if name not in (self.served, *self.adapters):
            return 404, {"object": "error", "message": f"The model `{name}` does not exist."}
        cont = bool(body.get("continue_final_message"))
        kwargs = dict(body.get("chat_template_kwargs") or {})
        ids = self.tok.apply_chat_template(
            body["messages"],
            add_generation_prompt=bool(body.get("add_generation_prompt", not cont)),
            continue_final_message=cont,
            tokenize=True,
            return_dict=False,
            **kwargs,
        )
        if isinstance(ids, dict):
            ids = ids["input_ids"]
        n = int(body.get("n") or 1)
        temperature = float(body.get("temperature", 1.0))
        gen: dict[str, Any] = {
            "max_new_tokens": int(body.get("max_tokens") or 16),
            "do_sample": temperature > 0,
            "num_return_sequences": n,
            "pad_token_id": self.tok.pad_token_id or self.tok.eos_token_id,
            "repetition_penalty": float(body.get("repetition_penalty") or 1.0),
        }
        if temperature > 0:
            gen.update(
                temperature=temperature,
                top_p=float(body.get("top_p", 1.0)),
                top_k=max(0, int(body.get("top_k") or 0)),  # vLLM: -1 (or 0) = no top-k
            )
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        torch = self.torch
        with self.lock:
            if body.get("seed") is not None:
                torch.manual_seed(int(body["seed"]))
            inp = torch.tensor([ids])
            if name in self.adapters:
                self.model.set_adapter(name)
                ctx: Any = _Null()
            else:
                ctx = self.model.disable_adapter() if self.adapters else _Null()
            with torch.inference_mode(), ctx:
                out = self.model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), **gen)
        choices, completion_tokens = [], 0
        for i, row in enumerate(out[:, len(ids) :].tolist()):
            eos = self.tok.eos_token_id
            hit_eos = eos in row
            body_ids = row[: row.index(eos)] if hit_eos else row
            text = str(self.tok.decode(body_ids, skip_special_tokens=True))
            cut = min((text.find(s) for s in stops if s and s in text), default=-1)
            finish = "stop" if (hit_eos or cut >= 0) else "length"
            if cut >= 0:
                text = text[:cut]
                body_ids = self.tok(text, add_special_tokens=False)["input_ids"]
            completion_tokens += len(body_ids) + (1 if hit_eos and cut < 0 else 0)
            choices.append(
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            )
        delay = float(os.environ.get("FAKE_VLLM_DELAY_S") or 0)
        if delay:
            time.sleep(delay)
        usage = {"prompt_tokens": len(ids), "completion_tokens": completion_tokens}
        usage["total_tokens"] = usage["prompt_tokens"] + completion_tokens
        return 200, {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": name,
            "choices": choices,
            "usage": usage,
        }


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def event(kind: str, args: argparse.Namespace, engine: Engine | None) -> None:
    path = os.environ.get("FAKE_VLLM_EVENTS")
    if not path:
        return
    row = {
        "event": kind,
        "pid": os.getpid(),
        "port": args.port,
        "served": engine.served if engine else None,
        "adapters": engine.adapters if engine else [],
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "time": time.time(),
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    args, _ignored = parse_args(sys.argv[1:] if argv is None else argv)
    engine = Engine(args)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {})
            elif self.path == "/v1/models":
                self._send(200, engine.models())
            else:
                self._send(404, {"message": f"no route {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                return self._send(404, {"message": f"no route {self.path}"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            try:
                code, obj = engine.chat(body)
            except Exception as e:  # a bad request is the client's 400, as in vLLM
                code, obj = 400, {"object": "error", "message": f"{type(e).__name__}: {e}"}
            self._send(code, obj)

    httpd = ThreadingHTTPServer((args.host, args.port), Handler)

    def stop(signum: int, frame: Any) -> None:
        event("stop", args, engine)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    event("ready", args, engine)
    httpd.serve_forever()
    httpd.server_close()


if __name__ == "__main__":
    main()

"""The plumbing of the tests' in-process fake HTTP endpoints (OpenAI-style servers and the like): a
silent handler that reads and writes JSON, and a server on a free local port in a daemon thread.
Each fake keeps only what it answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass  # keep the test output clean

    def read_json(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class LocalHttpServer:
    """`handler` served on 127.0.0.1 (`port` 0: a free one) until `close()`; `url` is the /v1 base."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0, poll_s: float = 0.5):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(poll_s,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

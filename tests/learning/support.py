"""A stand-in model server for the learning loop: OpenAI-compatible HTTP on 127.0.0.1, real sockets.

It plays a policy per model name: ``oracle`` lines solve any suite mission (the right tool calls in
order, then the answer), ``wrong`` answers every task with 0 at once. Which policy a model id gets
is the test's choice (``policies``), so a "better" model is exactly known. ``GET /v1/models`` is built
from the registry on every call (``names``), like `art serve`'s catalog, so the loop's hot-load
check reads the real champion.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents.suite import FAMILIES, SuiteMission

Policy = Callable[[SuiteMission, int], str]


def oracle(mission: SuiteMission, step: int) -> str:
    """The action line a perfect agent says at ``step`` (0-based) of ``mission`` (it knows the answer, so
    its calculator call is the answer itself; every tool a family needs is still called, for real)."""
    a = mission.answer
    src = next(iter(mission.files), "")
    if mission.family == "arith":
        lines = [f"calculator: {a}", f"answer: {a}"]
    elif mission.family == "lookup":
        lines = ["lookup: price", f"calculator: {a}", f"answer: {a}"]
    elif mission.family == "files":
        lines = [f"file_read: {src}", f"calculator: {a}", f"answer: {a}"]
    else:
        dst = next(iter(mission.expect_files))
        lines = [f"file_read: {src}", f"calculator: {a}", "file_write: " + json.dumps({"path": dst, "content": a}),
                 f"answer: {a}"]
    return lines[min(step, len(lines) - 1)]


def wrong(mission: SuiteMission, step: int) -> str:
    return "answer: 0"


def skip_write(mission: SuiteMission, step: int) -> str:
    """The oracle without its file_write: the right answer, but the file the task asks for is never written."""
    lines = [oracle(mission, k) for k in range(FAMILIES[mission.family].tool_calls + 1)]
    kept = [line for line in lines if not line.startswith("file_write:")]
    return kept[min(step, len(kept) - 1)]


class StandIn:
    """``policies(model) -> Policy``; ``names() -> {name: model id}`` for /v1/models."""

    def __init__(self, missions: list[SuiteMission], policies: Callable[[str], Policy],
                 names: Callable[[], dict[str, str]] = dict) -> None:
        self.by_task = {f"Task: {m.objective}": m for m in missions}
        self.policies, self.names = policies, names
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                cards = [{"id": n, "object": "model", "root": root} for n, root in server.names().items()]
                self._send(200, {"object": "list", "data": cards})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*server.answer(body))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
        messages = body["messages"]
        start = next((i for i, m in enumerate(messages) if m["role"] == "user" and m["content"] in self.by_task), None)
        if start is None:  # (a worked example before the task is not the task)
            return 400, {"error": {"message": "unknown task"}}
        mission = self.by_task[messages[start]["content"]]
        step = sum(1 for m in messages[start:] if m["role"] == "assistant")
        text = self.policies(body["model"])(mission, step)
        if body.get("continue_final_message"):  # a reply prefix ("calculator:"): the policy's input follows it
            step -= 1
            text = " " + self.policies(body["model"])(mission, step).partition(":")[2].strip()
        return 200, {"id": "c", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 50, "completion_tokens": 6, "total_tokens": 56}}

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

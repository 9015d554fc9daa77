"""Test doubles for the runner's edges: an in-memory SDK recorder and a scripted chat server.

The recorder stands in for the tracking SDK's output (what would become events), not for Kafka.
The chat server is a real OpenAI-compatible HTTP endpoint on 127.0.0.1:0: it answers each request
from a per-phase script (the ``PHASE:`` line of the prompt) and keeps every request it saw.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents.recording import ActionT
from schemas.models import CompletionTrace, SessionStatus


@dataclass
class RecordedStep:
    seq: int
    observation: str
    thought: str
    action: ActionT
    action_input: str
    tool_result: str | None
    error: str | None
    reflection: str | None
    step_reward: float | None
    step_metadata: dict[str, str]
    execution_time_ms: int
    tokens: int
    cost: float
    completions: list[CompletionTrace] = field(default_factory=list)


@dataclass
class MemoryRecorder:
    session_id: str
    started: dict[str, Any]
    steps: list[RecordedStep] = field(default_factory=list)
    completed: tuple[str | None, SessionStatus] | None = None

    async def record_step(self, *, observation: str, thought: str, action: ActionT, action_input: str = "",
                          tool_result: str | None = None, error: str | None = None, reflection: str | None = None,
                          step_reward: float | None = None, step_metadata: dict[str, str] | None = None,
                          execution_time_ms: int = 0, tokens: int = 0, cost: float = 0.0,
                          completions: list[CompletionTrace] | None = None) -> int:
        assert self.completed is None, "step recorded after complete"
        seq = len(self.steps) + 1  # seq 0 is SessionStarted
        self.steps.append(RecordedStep(seq, observation, thought, action, action_input, tool_result, error,
                                       reflection, step_reward, dict(step_metadata or {}), execution_time_ms,
                                       tokens, cost, list(completions or [])))
        return seq

    async def complete(self, final_answer: str | None, status: SessionStatus) -> None:
        assert self.completed is None, "completed twice"
        self.completed = (final_answer, status)


@dataclass
class MemoryOpener:
    sessions: list[MemoryRecorder] = field(default_factory=list)

    async def start_session(self, *, agent_name: str, objective: str, group_id: str | None = None, model: str = "",
                            agent_config: dict[str, str] | None = None,
                            success_criteria: list[str] | None = None) -> MemoryRecorder:
        recorder = MemoryRecorder(f"s-{uuid.uuid4().hex[:8]}", {
            "agent_name": agent_name, "objective": objective, "group_id": group_id, "model": model,
            "agent_config": agent_config or {}, "success_criteria": success_criteria or []})
        self.sessions.append(recorder)
        return recorder


DEFAULTS = {"think": "I should keep going.", "decide": '{"action": "think", "input": "hmm", "thought": "wait"}',
            "reflect": "Reflection: keep going."}


class ChatServer:
    """Scripted OpenAI-compatible endpoint; ``script(phase, *texts)`` queues replies."""

    def __init__(self, usage: dict[str, int] | None = None) -> None:
        self.scripts: dict[str, list[str]] = {"think": [], "decide": [], "reflect": []}
        self.requests: list[dict[str, Any]] = []
        self.usage = usage if usage is not None else {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        self.status = 200
        self.fail_next = 0  # answer this many requests with 503 first (retry tests)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = server._answer(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def script(self, phase: str, *texts: str) -> None:
        self.scripts[phase].extend(texts)

    def phase_requests(self, phase: str) -> list[str]:
        """The user-message texts of the requests of one phase, in order."""
        return [r["messages"][-1]["content"] for r in self.requests if phase_of(r) == phase]

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            if path != "/v1/chat/completions":
                return 404, {"error": f"no route {path}"}
            if self.fail_next:
                self.fail_next -= 1
                return 503, {"error": {"message": "overloaded"}}
            if self.status != 200:
                return self.status, {"error": {"message": "scripted failure"}}
            phase = phase_of(body)
            queue = self.scripts[phase]
            text = queue.pop(0) if queue else DEFAULTS[phase]
        reply: dict[str, Any] = {"id": "c1", "object": "chat.completion", "model": body.get("model", ""),
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}]}
        if self.usage:
            reply["usage"] = self.usage
        return 200, reply

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def phase_of(body: dict[str, Any]) -> str:
    first_line = body["messages"][-1]["content"].splitlines()[0]
    assert first_line.startswith("PHASE: "), first_line
    return first_line.removeprefix("PHASE: ").strip()

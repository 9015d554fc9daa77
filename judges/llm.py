"""The LLM performance judge, over the one OpenAI-compatible client (``agents.llm``).

Any endpoint that serves ``POST {base_url}/chat/completions`` works: vLLM, Ollama, llama.cpp,
OpenAI. Every transport failure becomes a ``JudgeError`` that names the URL and the cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pydantic import BaseModel

from agents.llm import ChatMessage, LLMError, OpenAIChatClient
from config.settings import ArtConfig, ModelsConfig
from judges.cache import JudgeCache, content_hash
from judges.contract import METRICS, JudgeWeights, MetricScores, clamp, make_judgment
from judges.errors import AnswerError, JudgeError
from judges.parsing import extract_json, parse_metric_scores
from judges.prompts import JUDGE_RETRY, Message, judge_messages
from schemas.models import TrajectoryCompleted, TrajectoryJudged

T = TypeVar("T")


class ChatClient:
    """The judges' side of the agents' client: messages in, text out, every failure a JudgeError.

    No retries of its own: a judge retries answers it cannot parse (``Exchange``), and a failed call
    fails the judgment, which the stream dead-letters or retries as a whole."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "", timeout_s: float = 60.0) -> None:
        try:
            self._llm = OpenAIChatClient(base_url, model, api_key=api_key, timeout_s=timeout_s, retries=0)
        except LLMError as exc:
            raise JudgeError(str(exc)) from None
        self.model = model
        self.url = self._llm.url
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, models: ModelsConfig) -> ChatClient:
        return cls(models.llm_base_url, models.llm_model, api_key=models.llm_api_key, timeout_s=models.llm_timeout_s)

    def complete(self, messages: list[Message], *, temperature: float = 0.0) -> str:
        try:
            return self._text(self._llm.chat_sync(_chat(messages), temperature=temperature).text)
        except LLMError as exc:
            raise JudgeError(str(exc)) from None

    async def acomplete(self, messages: list[Message], *, temperature: float = 0.0) -> str:
        try:
            return self._text((await self._llm.chat(_chat(messages), temperature=temperature)).text)
        except LLMError as exc:
            raise JudgeError(str(exc)) from None

    def close(self) -> None:
        self._llm.close()

    def _text(self, text: str) -> str:
        if not text:
            raise JudgeError(f"LLM endpoint {self.url} sent a completion without message content")
        return text


def _chat(messages: list[Message]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in messages]


class Exchange(Generic[T]):
    """One question with validation and corrective retries, driven by a sync or an async caller.

    ``pending()`` gives the messages to send (None once done); ``offer(text)`` validates an answer;
    after ``1 + max_retries`` rejected answers ``result()`` raises the last error with the count.
    A retry shows the model its rejected reply and the reason.
    """

    def __init__(self, messages: list[Message], parse: Callable[[str], T], *, max_retries: int,
                 correction: Callable[[AnswerError], str]) -> None:
        self.messages = list(messages)
        self.parse = parse
        self.max_attempts = 1 + max_retries
        self.correction = correction
        self.attempts = 0
        self.answer: str | None = None
        self._value: T | None = None
        self._error: AnswerError | None = None

    def pending(self) -> list[Message] | None:
        if self.answer is not None or self.attempts >= self.max_attempts:
            return None
        return self.messages

    def offer(self, text: str) -> None:
        self.attempts += 1
        try:
            self._value = self.parse(text)
        except AnswerError as exc:
            self._error = exc
            self.messages = [*self.messages, {"role": "assistant", "content": text},
                             {"role": "user", "content": self.correction(exc)}]
            return
        self.answer = text

    def result(self) -> T:
        if self.answer is None:
            last = self._error
            assert last is not None
            raise type(last)(last.text, f"{last.reason}; gave up after {self.attempts} attempts") from last
        return self._value  # type: ignore[return-value]


class JudgeAnswer(BaseModel):
    """A validated judge reply: six metrics, optional per-step scores and reasoning."""

    scores: MetricScores
    step_scores: list[float] = []
    reasoning: str = ""


def parse_judge_answer(text: str, step_count: int) -> JudgeAnswer:
    """Six metrics (required, any accepted score form); step scores kept only if one per step."""
    metrics = parse_metric_scores(text, METRICS)
    steps: list[float] = []
    reasoning = ""
    try:
        obj = extract_json(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        raw = obj.get("step_scores")
        if (isinstance(raw, list) and len(raw) == step_count
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)):
            steps = [clamp(float(v)) for v in raw]
        reasoning = str(obj.get("reasoning", ""))
    return JudgeAnswer(scores=MetricScores(**metrics), step_scores=steps, reasoning=reasoning)


class LLMJudge:
    """Performance judge over an OpenAI-compatible endpoint, with answer cache and parse retries."""

    def __init__(self, client: ChatClient, *, name: str = "llm", version: str = "1",
                 weights: JudgeWeights | None = None, cache: JudgeCache | None = None,
                 max_retries: int = 2, temperature: float = 0.0) -> None:
        self.client = client
        self.name = name
        self.version = version
        self.weights = weights or JudgeWeights()
        self.cache = cache if cache is not None else JudgeCache()
        self.max_retries = max_retries
        self.temperature = temperature

    @classmethod
    def from_config(cls, config: ArtConfig, *, cache: JudgeCache | None = None) -> LLMJudge:
        return cls(ChatClient.from_config(config.models), name=config.judge.name, version=config.judge.version,
                   weights=JudgeWeights.from_config(config.judge), cache=cache)

    @property
    def cache_version(self) -> str:
        return f"{self.name}@{self.version}"

    def judge(self, traj: TrajectoryCompleted) -> TrajectoryJudged:
        digest, exchange = self._start(traj)
        while (messages := exchange.pending()) is not None:
            exchange.offer(self.client.complete(messages, temperature=self.temperature))
        return self._finish(traj, digest, exchange)

    async def ajudge(self, traj: TrajectoryCompleted) -> TrajectoryJudged:
        digest, exchange = self._start(traj)
        while (messages := exchange.pending()) is not None:
            exchange.offer(await self.client.acomplete(messages, temperature=self.temperature))
        return self._finish(traj, digest, exchange)

    def _start(self, traj: TrajectoryCompleted) -> tuple[str, Exchange[JudgeAnswer]]:
        messages = judge_messages(traj)

        def exchange(retries: int) -> Exchange[JudgeAnswer]:
            return Exchange(messages, lambda text: parse_judge_answer(text, len(traj.steps)), max_retries=retries,
                            correction=lambda exc: JUDGE_RETRY.format(reason=exc.reason))

        digest = content_hash({"model": self.client.model, "messages": messages})
        cached = self.cache.get(digest, self.cache_version)
        if cached is not None:
            replay = exchange(0)
            replay.offer(cached)
            if replay.answer is not None:
                return digest, replay
        return digest, exchange(self.max_retries)

    def _finish(self, traj: TrajectoryCompleted, digest: str, exchange: Exchange[JudgeAnswer]) -> TrajectoryJudged:
        answer = exchange.result()
        assert exchange.answer is not None
        self.cache.put(digest, self.cache_version, exchange.answer)
        return make_judgment(traj, name=self.name, version=self.version, scores=answer.scores,
                             weights=self.weights, step_rewards=answer.step_scores, reasoning=answer.reasoning)

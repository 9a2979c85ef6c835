"""Parallel slots, the wait for them, the queue limit and prompt evaluation time, as Ollama 0.12 has them.

Timings are scripted (tokens/s, delays), so each test knows what a request should take; bounds are
loose enough for a busy machine and tight enough that a scheduler that does not queue, or queues
everything, fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import ollama
import pytest

from ollama_standin.__main__ import build_parser, config_from_args
from ollama_standin.brain import Reply
from ollama_standin.config import StandinConfig
from ollama_standin.server import ERR_MAX_QUEUE
from ollama_standin.testing import run_in_thread

WORDS = 20  # every reply: 20 tokens


class CountingBrain:
    def reply(self, model: str, messages: list[dict[str, Any]], tools: Any, options: dict[str, Any]) -> Reply:
        return Reply(content=" ".join(f"w{i}" for i in range(WORDS)))


async def timed_chat(client: ollama.AsyncClient, stream: bool = True, content: str = "go") -> tuple[float, Any]:
    """(latency, final response) of one chat."""
    started = time.perf_counter()
    messages = [{"role": "user", "content": content}]
    if not stream:
        final = await client.chat("qwen2.5:7b", messages=messages, stream=False)
        return time.perf_counter() - started, final
    final = None
    async for part in await client.chat("qwen2.5:7b", messages=messages, stream=True):
        final = part if part.done else final
    return time.perf_counter() - started, final


def test_parallel_slots_serve_n_at_once_and_queue_the_rest() -> None:
    # 20 tokens at 100 tokens/s: 0.2 s per request; two slots, four requests: two waves.
    config = StandinConfig(models=["qwen2.5:7b"], tokens_per_second=100, num_parallel=2)
    with run_in_thread(config, brain=CountingBrain()) as standin:

        async def four() -> list[tuple[float, Any]]:
            client = ollama.AsyncClient(host=standin.url, timeout=10)
            await timed_chat(client)  # the load, out of the way
            # streaming and non-streaming requests share the same slots
            return await asyncio.gather(timed_chat(client), timed_chat(client, stream=False),
                                        timed_chat(client), timed_chat(client, stream=False))  # fmt: skip

        results = sorted(asyncio.run(four()), key=lambda r: r[0])
    latencies = [latency for latency, _ in results]
    assert 0.19 <= latencies[0] <= latencies[1] <= 0.32, latencies
    assert 0.39 <= latencies[2] <= latencies[3] <= 0.6, latencies
    for latency, final in results:
        assert final.eval_count == WORDS
        # Ollama's runner timings cover generation only; the wait for a slot is in total_duration alone.
        assert 0.18 <= final.eval_duration / 1e9 <= 0.3
        assert final.prompt_eval_duration / 1e9 < 0.05 and final.load_duration / 1e9 < 0.05
        waited = (final.total_duration - final.load_duration - final.prompt_eval_duration - final.eval_duration) / 1e9
        assert (waited > 0.15) == (latency > 0.35), (latency, waited)
        assert final.total_duration / 1e9 == pytest.approx(latency, abs=0.06)


def test_one_slot_by_default_like_ollama_0_12() -> None:
    config = StandinConfig(models=["qwen2.5:7b"], tokens_per_second=100)
    assert config.num_parallel == 1 and config.max_queue == 512
    with run_in_thread(config, brain=CountingBrain()) as standin:

        async def two() -> list[tuple[float, Any]]:
            client = ollama.AsyncClient(host=standin.url, timeout=10)
            return await asyncio.gather(timed_chat(client), timed_chat(client))

        latencies = sorted(latency for latency, _ in asyncio.run(two()))
    assert latencies[0] < 0.32 and 0.39 <= latencies[1] <= 0.6, latencies


def test_prompt_evaluation_takes_longer_for_longer_prompts() -> None:
    config = StandinConfig(
        models=["qwen2.5:7b"], tokens_per_second=100, first_token_delay=0.05, prompt_tokens_per_second=1000
    )
    with run_in_thread(config, brain=CountingBrain()) as standin:
        client = ollama.Client(host=standin.url, timeout=10)
        client.chat("qwen2.5:7b", messages=[{"role": "user", "content": "load"}])
        for words in (1, 100):
            started = time.perf_counter()
            first_at, final = None, None
            text = " ".join(["word"] * words)
            for part in client.chat("qwen2.5:7b", messages=[{"role": "user", "content": text}], stream=True):
                first_at = first_at or time.perf_counter() - started
                final = part
            evaluation = 0.05 + final.prompt_eval_count / 1000
            assert final.prompt_eval_duration / 1e9 == pytest.approx(evaluation, abs=0.03)
            assert evaluation + 0.01 <= first_at <= evaluation + 0.1  # plus the first token, 10 ms
    assert final.prompt_eval_count > 100  # the long prompt: ~125 tokens, 0.125 s more to its first token


def test_a_full_queue_answers_503() -> None:
    config = StandinConfig(models=["qwen2.5:7b"], tokens_per_second=50, num_parallel=1, max_queue=1)
    with run_in_thread(config, brain=CountingBrain()) as standin:

        async def three() -> list[Any]:
            client = ollama.AsyncClient(host=standin.url, timeout=10)
            await timed_chat(client)
            running = asyncio.ensure_future(timed_chat(client))  # has the slot for 0.4 s
            await asyncio.sleep(0.1)
            waiting = asyncio.ensure_future(timed_chat(client))  # the one place in the queue
            await asyncio.sleep(0.1)
            refused = asyncio.ensure_future(timed_chat(client))
            return await asyncio.gather(running, waiting, refused, return_exceptions=True)

        running, waiting, refused = asyncio.run(three())
        assert running[1].eval_count == WORDS and waiting[1].eval_count == WORDS
        assert isinstance(refused, ollama.ResponseError)
        assert refused.status_code == 503 and refused.error == ERR_MAX_QUEUE
        assert [r.status for r in standin.requests("/api/chat")].count(503) == 1


def test_a_client_that_gives_up_while_queued_frees_its_place() -> None:
    config = StandinConfig(models=["qwen2.5:7b"], tokens_per_second=50, num_parallel=1)
    with run_in_thread(config, brain=CountingBrain()) as standin:

        async def scenario() -> float:
            client = ollama.AsyncClient(host=standin.url, timeout=10)
            await timed_chat(client)
            running = asyncio.ensure_future(timed_chat(client))  # 0.4 s
            await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=standin.url) as raw:  # queued, then hangs up
                body = {"model": "qwen2.5:7b", "messages": [{"role": "user", "content": "x"}]}
                async with raw.stream("POST", "/api/chat", json=body):
                    await asyncio.sleep(0.05)
            await running
            latency, _ = await timed_chat(client)  # must not wait for the abandoned request's 0.4 s
            return latency

        assert asyncio.run(scenario()) < 0.6


def test_num_parallel_and_max_queue_come_from_ollamas_variables(monkeypatch, caplog) -> None:
    for name in ("STANDIN_NUM_PARALLEL", "STANDIN_MAX_QUEUE", "OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_QUEUE"):
        monkeypatch.delenv(name, raising=False)

    def config(*argv: str) -> StandinConfig:
        return config_from_args(build_parser().parse_args(list(argv)))

    assert (config().num_parallel, config().max_queue) == (1, 512)
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "4")
    monkeypatch.setenv("OLLAMA_MAX_QUEUE", "64")
    assert (config().num_parallel, config().max_queue) == (4, 64)
    assert config("--num-parallel", "2", "--max-queue", "3").num_parallel == 2
    monkeypatch.setenv("STANDIN_NUM_PARALLEL", "3")
    assert config().num_parallel == 3
    monkeypatch.delenv("STANDIN_NUM_PARALLEL")
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "many")
    with caplog.at_level(logging.WARNING, logger="ollama_standin"):
        assert config().num_parallel == 1  # envconfig.Uint: logged, then the default
    assert "invalid environment variable, using default" in caplog.text and "OLLAMA_NUM_PARALLEL" in caplog.text
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "0")
    assert config().num_parallel == 1  # the scheduler loads a model with at least one slot

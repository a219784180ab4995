"""Continuous batching: concurrent streams through the gateway vs plain `model.generate` (issue #12).

One run, one model built here (a Llama with random weights, hidden 512, 8 layers:
about 85 MB; the end-of-text row zeroed so greedy answers run to `max_tokens` on
both sides), one worker:

- throughput: N concurrent streams of 64 tokens through the real gateway (uvicorn,
  a Dask worker, SSE) vs `model.generate` on a left-padded batch of the same N
  prompts in this process, with as many torch threads as the worker has; N = 8, 32.
- fairness: time to first token of the last of 8 simultaneous streams vs the first.
- a lone request: its latency with batching (max_batch 32) vs one sequence at a time
  (max_batch 1) through the gateway; and in this process, the batch loop alone vs
  `model.generate` at batch 1 (the old path's engine).

    .venv/bin/python benchmarks/bench_batching.py              # 3 rounds, medians
    .venv/bin/python benchmarks/bench_batching.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoglm_cli.testing.servers import ServeProcess  # noqa: E402

TOKENS = 64
PROMPT = "Request {i}: tell me about the quick brown fox"


def build_model(work: Path) -> Path:
    from autoglm_cli.testing.tiny_model import build_tiny_model

    return build_tiny_model(work / "model", hidden_size=512, layers=8, context=2048, greedy_never_ends=True)


def serve_config(work: Path, model: Path, max_batch: int) -> Path:
    path = work / f"serve-{max_batch}.yaml"
    path.write_text(
        json.dumps(
            {
                "model_pool": {"default": "bench"},
                "scheduler": "static",
                "models": {"bench": {"backend": "transformers", "source": str(model)}},
                "workers": {"engine": "dask", "count": 1, "max_batch": max_batch, "concurrency": 64},
                "gateway": {"auth": False, "max_queue": 4096},
                "log_level": "WARN",
            }
        )
    )
    return path


def chat(i: int) -> list[dict]:
    return [{"role": "user", "content": PROMPT.format(i=i)}]


# -- through the gateway -----------------------------------------------------------------


async def one_stream(client, url: str, i: int, start: float) -> tuple[float, float, int]:
    """(time to first token, time to the end, completion tokens), from `start`."""
    body = {
        "model": "bench",
        "messages": chat(i),
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first, tokens = None, 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
            elif first is None and any(c["delta"].get("content") for c in data["choices"]):
                first = time.perf_counter() - start
    return first, time.perf_counter() - start, tokens


async def streams(url: str, n: int) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one_stream(client, url, i, start) for i in range(n)))
    elapsed = max(end for _, end, _ in results)
    ttfts = sorted(first for first, _, _ in results)
    tokens = sum(t for _, _, t in results)
    return {"tok_s": tokens / elapsed, "tokens": tokens, "ttft_first": ttfts[0], "ttft_last": ttfts[-1]}


def lone(url: str) -> float:
    import httpx

    body = {"model": "bench", "messages": chat(0), "max_tokens": TOKENS, "temperature": 0}
    start = time.perf_counter()
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    reply.raise_for_status()
    assert reply.json()["usage"]["completion_tokens"] == TOKENS
    return time.perf_counter() - start


def worker_threads(url: str) -> int:
    import httpx
    from distributed import Client

    address = httpx.get(f"{url}/readyz").json()["cluster"]["scheduler"]
    with Client(address, timeout="30s") as client:

        def threads() -> int:
            import torch

            return torch.get_num_threads()

        return next(iter(client.run(threads).values()))


# -- in this process -------------------------------------------------------------------------


class InProcess:
    def __init__(self, model_dir: Path) -> None:
        from autoglm_cli.runtime.backends.base import BackendSettings
        from autoglm_cli.runtime.backends.hf_transformers import TransformersBackend

        self.backend = TransformersBackend(
            BackendSettings(model="bench", backend="transformers", source=str(model_dir))
        )
        self.backend.load()
        self.model, self.tokenizer = self.backend.model, self.backend.tokenizer

    def generate(self, n: int) -> float:
        """Tokens/s of `model.generate` on a left-padded batch of n prompts, greedy, 64 tokens each."""
        import torch

        prompts = [self.tokenizer.apply_chat_template(chat(i), add_generation_prompt=True) for i in range(n)]
        prompts = [list(p["input_ids"] if hasattr(p, "keys") else p) for p in prompts]
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=TOKENS, do_sample=False, pad_token_id=pad
            )
        elapsed = time.perf_counter() - start
        assert out.shape[1] - width == TOKENS
        return n * TOKENS / elapsed

    def loop_lone(self) -> float:
        from autoglm_cli.runtime.backends.base import GenerationRequest

        request = GenerationRequest(id="x", model="bench", messages=chat(0), max_tokens=TOKENS, temperature=0)
        start = time.perf_counter()
        result = self.backend.generate(request, None, lambda: False)
        assert result.completion_tokens == TOKENS
        return time.perf_counter() - start

    def close(self) -> None:
        self.backend.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each measurement (medians)")
    args = parser.parse_args()
    med = statistics.median
    work = Path(tempfile.mkdtemp(prefix="autoglm-bench-batching-"))
    model = build_model(work)
    size = sum(f.stat().st_size for f in model.glob("*.safetensors")) / 1e6
    env = {"PYTHONPATH": str(ROOT)}
    # Both gateways and the in-process anchor are up at once and measured in turns, so that each
    # side sees the same load on a shared machine.
    with (
        ServeProcess(serve_config(work, model, 32), env=env, ready_timeout=300) as batched,
        ServeProcess(serve_config(work, model, 1), env=env, ready_timeout=300) as single,
    ):
        threads = worker_threads(batched.url)
        import torch

        torch.set_num_threads(threads)  # the anchor gets what the worker gets
        local = InProcess(model)
        for url in (batched.url, single.url):  # warm-up
            lone(url)
        asyncio.run(streams(batched.url, 8))
        local.generate(8)
        rows: dict[str, list] = {
            k: [] for k in ("gw8", "gen8", "gw32", "gen32", "lone", "lone1", "loop", "gen1")
        }
        for _ in range(args.rounds):
            rows["gw8"].append(asyncio.run(streams(batched.url, 8)))
            rows["gen8"].append(local.generate(8))
            rows["gw32"].append(asyncio.run(streams(batched.url, 32)))
            rows["gen32"].append(local.generate(32))
            rows["lone"].append(lone(batched.url))
            rows["lone1"].append(lone(single.url))
            rows["loop"].append(local.loop_lone())
            rows["gen1"].append(TOKENS / local.generate(1))
        one = asyncio.run(streams(single.url, 8))  # today's one-at-a-time node, for the record
        local.close()

    print(
        f"model {size:.0f} MB (Llama, hidden 512, 8 layers), {TOKENS} tokens a stream, greedy; "
        f"torch threads {threads} (worker and anchor); {os.cpu_count()} CPUs; medians of {args.rounds}"
    )

    def row(label: str, ours: float, anchor: float, goal: str = "") -> None:
        print(f"{label:38} {ours:10.1f} {anchor:10.1f} {ours / anchor:6.2f}x  {goal}")

    print(f"{'':38} {'autoglm':>10} {'anchor':>10} {'ratio':>7}  goal")
    for n in (8, 32):
        tok_s = med(r["tok_s"] for r in rows[f"gw{n}"])
        row(f"{n} streams: tokens/s vs generate({n})", tok_s, med(rows[f"gen{n}"]), ">= 0.8x")
    row("8 streams, max_batch 1: tokens/s", one["tok_s"], med(rows["gen8"]), "(one at a time)")
    first = med(r["ttft_first"] for r in rows["gw8"]) * 1000
    row("8 streams: TTFT ms, last vs first", med(r["ttft_last"] for r in rows["gw8"]) * 1000, first, "<= 2x")
    row("8, max_batch 1: TTFT ms, last vs first", one["ttft_last"] * 1000, one["ttft_first"] * 1000)
    row("lone request ms: max_batch 32 vs 1", med(rows["lone"]) * 1000, med(rows["lone1"]) * 1000, "<= 1.1x")
    row("lone, in process: loop vs generate(1)", med(rows["loop"]) * 1000, med(rows["gen1"]) * 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

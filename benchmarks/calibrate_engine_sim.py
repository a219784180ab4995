"""Rough calibration of the simulated engine (ops/bench/engine_sim.py) against the runtime's own
transformers backend: prefill time per token and decode time per step at batch 1, 8 and 32,
with the tiny test model on the CPU (one thread).

    .venv/bin/python benchmarks/calibrate_engine_sim.py

The figures describe the shape (how a step grows with the batch), not a deployment: see
docs/benchmarks.md, "Scheduler on batching nodes".
"""

from __future__ import annotations

import tempfile
import time


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from autoglm_cli.testing.tiny_model import build_tiny_model

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tempfile.mkdtemp())).eval()
    vocab = model.get_input_embeddings().num_embeddings
    for prompt in (16, 256):
        for batch in (1, 8, 32):
            ids = torch.randint(10, vocab, (batch, prompt))
            with torch.no_grad():
                model(ids)  # warm up
                began = time.perf_counter()
                model(ids)
                prefill = time.perf_counter() - began
                best = float("inf")
                for _ in range(3):
                    began = time.perf_counter()
                    model.generate(
                        ids,
                        attention_mask=torch.ones_like(ids),
                        max_new_tokens=32,
                        min_new_tokens=32,
                        do_sample=False,
                        pad_token_id=0,
                    )
                    best = min(best, time.perf_counter() - began)
            print(
                f"prompt {prompt:4d} batch {batch:2d}:"
                f" prefill {prefill / (batch * prompt) * 1e6:6.1f} us/token,"
                f" decode {best / 32 * 1000:6.2f} ms/step"
            )


if __name__ == "__main__":
    main()

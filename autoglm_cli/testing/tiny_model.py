"""Build a tiny but real causal LM on disk in a few seconds, with no network.

A `LlamaConfig` with hidden size 32 and 2 layers, random weights saved as
safetensors (optionally in several shards), and a small byte-level BPE tokenizer
trained on a built-in corpus, with a chat template. transformers loads it with
`AutoModelForCausalLM.from_pretrained(dir)` and generates on the CPU.

Needs the `transformers` extra (torch, transformers, tokenizers, safetensors).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CORPUS = [
    "Hello, how can I help you today?",
    "The quick brown fox jumps over the lazy dog.",
    "GLM models are served behind an OpenAI-compatible gateway.",
    "Redeploy the service after the repository moved from THUDM to zai-org.",
    "Weights are fetched, verified with sha256, and cached on disk.",
    "Hi there! I am a tiny model used for tests.",
    "user assistant system",
] * 20


def build_tiny_model(
    directory: str | Path,
    *,
    shards: int = 1,
    vocab_size: int = 512,
    hidden_size: int = 32,
    layers: int = 2,
    seed: int = 0,
    context: int = 512,
    greedy_never_ends: bool = False,
) -> Path:
    """Write a tiny Llama (config, tokenizer, safetensors weights) into `directory`.

    `context`: max_position_embeddings. `greedy_never_ends`: the end-of-text token's
    output row is zero, so its logit is 0 while the largest of the others is positive:
    greedy decoding never ends early and every answer runs to `max_tokens` (for tests
    and benchmarks that need answers of a known length).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    special = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    if greedy_never_ends:
        with torch.no_grad():
            model.lm_head.weight[fast.eos_token_id].zero_()
    if shards > 1:
        total = sum(p.numel() * p.element_size() for p in model.parameters())
        # Sequential packing needs some slack to land on exactly `shards` files.
        max_shard = int(total / shards * 1.3) + 1
        model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard)
    else:
        model.save_pretrained(out, safe_serialization=True)
    return out

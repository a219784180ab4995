"""Model weights: resumable, verified downloads into the standard HF cache, and hub verification.

Modules: `sources` (Hub metadata, plain URLs), `http` (the pooled session),
`hashing` (hash while downloading), `download` (the engine: partial file +
sidecar, Range resume, atomic publish), `cache_layout` (HF cache / local dir),
`fetch` (planning, disk check, parallel files), `hub_verify` (`verify --hf`).
Heavy imports (huggingface_hub, requests) happen inside functions.
"""

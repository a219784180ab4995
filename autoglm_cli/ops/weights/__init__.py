"""Model weights: resumable, verified downloads into the standard HF cache, and hub verification.

Modules: `sources` (Hub metadata, plain URLs, mirrors without hashes), `http`
(the pooled session), `hashing` (hash while downloading), `download` (the engine:
partial file + sidecar, Range resume, atomic publish), `ranged` (several byte
ranges of one file at once, endpoint failover), `partial_state` (what a partial
download holds: sidecar + journal), `resumable_hash` (a SHA-256 state that can
be saved), `cache_layout` (HF cache / local dir), `fetch` (planning, disk check,
parallel files), `plan` (`--dry-run`), `hub_verify` (`verify --hf`).
Heavy imports (huggingface_hub, requests) happen inside functions.
"""

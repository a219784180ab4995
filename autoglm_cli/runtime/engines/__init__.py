"""Inference engines (vLLM, SGLang) as nodes: their load signals, and engines `autoglm worker
--engine` starts and supervises.

- `signals.py`: reads an engine's Prometheus endpoint into its node's `engine_running`,
  `engine_waiting`, `kv_cache_usage`, `signals_at` (`EngineSignalPoller`, started by the
  gateway for every upstream node);
- `commands.py`: an engine's command line from the config's `engines` section;
- `supervisor.py`: runs one engine per GPU set, waits for its health endpoint, restarts it
  with backoff when it dies, its output in the worker's log.
"""

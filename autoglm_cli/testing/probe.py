"""A steady probe load for tests and benchmarks: N non-streamed requests per second, every answer kept.

Each worker thread holds one keep-alive connection (as an OpenAI client does) and
sends on a fixed schedule, so a deployment that drops a connection, refuses one or
answers an error shows up as a failure. `completion_tokens` of each answer tells
the versions apart when they are configured to generate different lengths.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ProbeResult:
    ok: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)  # (time, what went wrong)
    first_seen: dict[int, float] = field(default_factory=dict)  # completion_tokens -> first answer time
    last_seen: dict[int, float] = field(default_factory=dict)
    by_tokens: Counter = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return self.ok + len(self.failures)


class ProbeLoad:
    """`with ProbeLoad(url, rate=50) as probe: ...`; then `probe.result` (times are time.monotonic())."""

    def __init__(
        self,
        url: str,
        *,
        model: str,
        rate: float = 50.0,
        workers: int = 8,
        api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.model = model
        self.interval = workers / rate
        self.workers = workers
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.result = ProbeResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ProbeLoad:
        for index in range(self.workers):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def _run(self, index: int) -> None:
        import requests

        session = requests.Session()
        body = {"model": self.model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 16}
        next_at = time.monotonic() + self.interval * index / self.workers  # spread the workers out
        while not self._stop.is_set():
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            if self._stop.is_set():
                break
            next_at += self.interval
            try:
                response = session.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
                tokens, problem = None, f"HTTP {response.status_code}: {response.text[:120]}"
                if response.status_code == 200:
                    tokens, problem = response.json()["usage"]["completion_tokens"], None
            except Exception as exc:  # noqa: BLE001 - every kind of failure is what this counts
                tokens, problem = None, f"{type(exc).__name__}: {str(exc)[:160]}"
            now = time.monotonic()
            with self._lock:
                if problem is not None:
                    self.result.failures.append((now, problem))
                else:
                    self.result.ok += 1
                    self.result.by_tokens[tokens] += 1
                    self.result.first_seen.setdefault(tokens, now)
                    self.result.last_seen[tokens] = now
        session.close()

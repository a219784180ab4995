"""`TaskCostModel`: how long one task will take, learned from the completions seen.

An LLM request's service time is mostly its length: a fixed cost, a cost per prompt
token (prefill) and one per generated token (decode), and `max_tokens` bounds the
generated part. The model fits service seconds ~ b0 + b1 * prompt_tokens + b2 *
max_tokens (+ b3 for a request without max_tokens, whose length is unknown rather
than zero) by exponentially weighted least squares (recent completions count more,
so it follows a model or hardware change), with a small ridge so that a feature
that never varies (every client sends max_tokens 4096) leaves the fit at the mean
instead of making it singular. No estimate before `min_samples` completions (a line
through the first two points can charge seconds per token), token slopes are never
negative, and no estimate falls below a small share of the mean: a few requests
refused in milliseconds must not teach that long prompts are free.

The router needs two things from it: a task's estimate, and how far estimates are
off (`relative_error`). When max_tokens says nothing about the length (clients stop
at end of text far below it), the error stays large and the router falls back to
treating service times as unknown and heavy-tailed; when it predicts well, the router
can count the work queued on each node task by task.
"""

from __future__ import annotations

from .base import Task

_SCALE = 1000.0  # tokens per feature unit: keeps the columns of comparable size
_TOKEN_SLOPES = (1, 2)  # the prompt and max_tokens columns: a token never costs negative time
_FEATURES = 4
_FLOOR = 0.01  # no estimate below this share of the mean completion: a fit is not a measurement


class TaskCostModel:
    def __init__(self, *, memory: float = 500.0, ridge: float = 1e-6, min_samples: int = 20) -> None:
        if memory < 1 or ridge <= 0 or min_samples < 1:
            raise ValueError("memory must be >= 1, ridge > 0, min_samples >= 1")
        self._keep = 1.0 - 1.0 / memory  # forgetting factor per completion
        self._ridge = ridge
        self.min_samples = min_samples
        self.samples = 0
        self._xtx = [[0.0] * _FEATURES for _ in range(_FEATURES)]
        self._xty = [0.0] * _FEATURES
        self._coef: list[float] | None = None
        self.relative_error = 1.0  # EWMA of |actual / estimate - 1|, capped at 1; 1 = no idea yet

    @staticmethod
    def _features(task: Task) -> tuple[float, ...]:
        # A request without max_tokens runs to the backend's own limit or to end of text: its
        # length is unknown, not zero, so it gets its own intercept instead of 0 tokens.
        bounded = task.max_tokens > 0
        return (
            1.0,
            max(0, task.prompt_tokens) / _SCALE,
            task.max_tokens / _SCALE if bounded else 0.0,
            0.0 if bounded else 1.0,
        )

    @property
    def ready(self) -> bool:
        """Whether estimates are available (enough completions seen)."""
        return self._coefficients() is not None

    def estimate(self, task: Task) -> float | None:
        """Seconds `task` is expected to take on an average node; None until enough is known."""
        coef = self._coefficients()
        if coef is None:
            return None
        seconds = sum(c * x for c, x in zip(coef, self._features(task), strict=True))
        mean = self._xty[0] / self._xtx[0][0]  # the decayed mean completion time
        return max(seconds, _FLOOR * mean, 1e-6)

    def _coefficients(self) -> list[float] | None:
        if self.samples < self.min_samples:
            return None
        if self._coef is None:
            self._coef = self._fit()
        return self._coef

    def observe(self, task: Task, seconds: float, *, speed: float = 1.0) -> None:
        """`task` took `seconds` on a node `speed` times slower than the pool's average.

        The fit learns the pool's average (node speeds are the caller's to track); the error
        is measured against the estimate for that node, so that nodes of different speeds do
        not look like poor estimates."""
        predicted = self.estimate(task)
        if predicted is not None:
            error = min(1.0, abs(seconds / (predicted * speed) - 1.0))
            self.relative_error += 0.05 * (error - self.relative_error)
        x = self._features(task)
        keep = self._keep
        for i in range(_FEATURES):
            row = self._xtx[i]
            for j in range(_FEATURES):
                row[j] = keep * row[j] + x[i] * x[j]
            self._xty[i] = keep * self._xty[i] + x[i] * seconds
        self.samples += 1
        self._coef = None

    def _fit(self) -> list[float] | None:
        """The ridge least-squares coefficients, a token slope that comes out negative (noise,
        or requests refused early) fixed at zero and the rest fitted again."""
        active = list(range(_FEATURES))
        while True:
            solved = self._solve(active)
            if solved is None:
                return None
            coef = [0.0] * _FEATURES
            for index, value in zip(active, solved, strict=True):
                coef[index] = value
            negative = [i for i in _TOKEN_SLOPES if i in active and coef[i] < 0]
            if not negative:
                return coef
            active.remove(negative[0])

    def _solve(self, active: list[int]) -> list[float] | None:
        """Gaussian elimination with partial pivoting on the normal equations of `active`."""
        n = len(active)
        weight = self._xtx[0][0]  # the decayed sample count
        a = [
            [self._xtx[i][j] + (self._ridge * weight if i == j and i > 0 else 0.0) for j in active]
            + [self._xty[i]]
            for i in active
        ]
        for col in range(n):
            pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
            if abs(a[pivot][col]) < 1e-12:
                return None
            a[col], a[pivot] = a[pivot], a[col]
            for r in range(n):
                if r != col:
                    f = a[r][col] / a[col][col]
                    a[r] = [v - f * p for v, p in zip(a[r], a[col], strict=True)]
        return [a[i][n] / a[i][i] for i in range(n)]

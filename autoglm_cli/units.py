"""The one way sizes and durations are written for people, everywhere in autoglm.

Sizes are IEC (powers of 1024: KiB, MiB, GiB), so the same disk reads the same in
env-check, health, progress bars and summaries. Durations switch from ms to s to
"1 min 05 s" as they grow. Config values in GB (e.g. `min_memory_gb`) are still
parsed as the config documents them; only what is shown goes through here.
"""

from __future__ import annotations

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size_text(n: float) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 250.0 MiB, 17.5 GiB, 2.0 TiB."""
    value = float(n)
    for unit in _SIZE_UNITS[:-1]:
        if abs(value) < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_SIZE_UNITS[-1]}"


def rate_text(bytes_per_s: float) -> str:
    """A transfer or hashing rate: 1.4 GiB/s."""
    return f"{size_text(bytes_per_s)}/s"


def duration_text(seconds: float) -> str:
    """Seconds for people: 54 ms, 1.3 s, 42 s, 1 min 05 s, 2 h 03 min."""
    s = max(0.0, float(seconds))
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    minutes, sec = divmod(int(round(s)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"

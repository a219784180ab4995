"""SHA-256 (and git's SHA-1) whose running state can be saved to disk and picked up again.

`hashlib` objects cannot be pickled, so a resumed download would have to re-read
everything it had already hashed. OpenSSL's low-level `SHA256_CTX` / `SHA_CTX`
is plain memory (chaining values, bit count, the pending block), so its bytes are
the whole state: `state()` saves them, `ResumableHash(state=...)` continues
from them. It is the same libcrypto code hashlib uses (same speed, and ctypes
releases the GIL during each call, so a hashing thread runs beside the network
threads). Where libcrypto cannot be loaded, `available()` is False and the
caller falls back to hashlib and re-reads what it had hashed.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import functools

_CTX_BYTES = 256  # larger than SHA256_CTX (112) and SHA_CTX (96) on every platform
_DIGEST = {"sha256": 32, "sha1": 20}
_PREFIX = {"sha256": "SHA256", "sha1": "SHA1"}


@functools.lru_cache(maxsize=1)
def _libcrypto():
    for name in (ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            for prefix in _PREFIX.values():
                getattr(lib, f"{prefix}_Init").argtypes = [ctypes.c_void_p]
                getattr(lib, f"{prefix}_Update").argtypes = [
                    ctypes.c_void_p,
                    ctypes.c_void_p,
                    ctypes.c_size_t,
                ]
                getattr(lib, f"{prefix}_Final").argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        except AttributeError:
            continue
        return lib
    return None


def available() -> bool:
    return _libcrypto() is not None


class ResumableHash:
    """One running digest; `update` takes any writable buffer or bytes."""

    def __init__(self, algorithm: str = "sha256", *, state: bytes | None = None, prefix: bytes = b"") -> None:
        lib = _libcrypto()
        if lib is None:
            raise RuntimeError("libcrypto is not available")
        self.algorithm = algorithm
        self._update = getattr(lib, f"{_PREFIX[algorithm]}_Update")
        self._final = getattr(lib, f"{_PREFIX[algorithm]}_Final")
        if state is not None:
            if len(state) != _CTX_BYTES:
                raise ValueError("not a saved hash state")
            self._ctx = ctypes.create_string_buffer(state, _CTX_BYTES)
        else:
            self._ctx = ctypes.create_string_buffer(_CTX_BYTES)
            getattr(lib, f"{_PREFIX[algorithm]}_Init")(self._ctx)
            if prefix:
                self.update(prefix)

    def update(self, data) -> None:
        if isinstance(data, bytes):
            self._update(self._ctx, data, len(data))
            return
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if view.readonly:
            self.update(bytes(view))
            return
        array = (ctypes.c_char * view.nbytes).from_buffer(view)
        self._update(self._ctx, ctypes.addressof(array), view.nbytes)

    def state(self) -> bytes:
        return self._ctx.raw

    def state_text(self) -> str:
        return base64.b64encode(self.state()).decode()

    @classmethod
    def from_text(cls, algorithm: str, text: str) -> ResumableHash:
        return cls(algorithm, state=base64.b64decode(text))

    def hexdigest(self) -> str:
        """The digest so far (the state itself is left as it is)."""
        copy = ctypes.create_string_buffer(self._ctx.raw, _CTX_BYTES)
        out = ctypes.create_string_buffer(_DIGEST[self.algorithm])
        self._final(out, copy)
        return out.raw.hex()

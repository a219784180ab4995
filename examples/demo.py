"""`make demo`: the main job on the embedded default.

For now (issue #2): check the environment, then a verify round trip on generated
files. Issue #8 extends it to a full local redeploy of a tiny model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def autoglm(*args: str) -> int:
    print(f"\n$ autoglm {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "autoglm_cli", *args])


def main() -> int:
    autoglm("env-check")  # informative: a missing recommended tool is not a demo failure
    with tempfile.TemporaryDirectory(prefix="autoglm-demo-") as tmp:
        root = Path(tmp) / "weights"
        root.mkdir()
        for i in range(3):
            (root / f"shard-{i}.bin").write_bytes(os.urandom(1 << 20))
        manifest = Path(tmp) / "SHA256SUMS"
        if autoglm("verify-sha256", "--generate", str(root), "--output", str(manifest)) != 0:
            return 1
        if autoglm("verify", str(manifest), "--root", str(root)) != 0:
            return 1
        (root / "shard-1.bin").write_bytes(b"corrupted")
        code = autoglm("verify", str(manifest), "--root", str(root))
        print(f"\nafter corrupting shard-1.bin, verify exits {code} (1 = mismatch found)")
        return 0 if code == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

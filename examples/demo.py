"""`make demo`: the main job on the embedded default.

For now (issue #2): check the environment, then a verify round trip on generated
files. Issue #8 extends it to a full local redeploy of a tiny model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def autoglm(*args: str) -> int:
    print(f"\n$ autoglm {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "autoglm_cli", *args])


def step(text: str) -> None:
    print(f"\n--- {text}", flush=True)


def verify_round_trip(tmp: Path) -> bool:
    """Write a manifest for a fake model folder, check it, break a shard, check again."""
    weights = tmp / "glm-4-9b-chat"
    weights.mkdir()
    for i in range(1, 4):
        (weights / f"model-0000{i}-of-00003.safetensors").write_bytes(os.urandom(4 << 20))
    (weights / "config.json").write_text('{"model_type": "chatglm"}\n')
    (weights / "tokenizer config.json").write_text("{}\n")  # a space, as real repos have
    manifest = weights / "SHA256SUMS"

    step("write a manifest (sorted, relative names, the format sha256sum writes)")
    if autoglm("verify-sha256", "--generate", str(weights), "--output", str(manifest)) != 0:
        return False
    print(manifest.read_text(), end="")

    if shutil.which("sha256sum"):
        step("GNU sha256sum accepts it as is")
        print(f"$ cd {weights} && sha256sum --check --strict SHA256SUMS", flush=True)
        if subprocess.call(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=weights) != 0:
            return False

    step("verify: names are relative to the manifest's folder; exit 0 when all is well")
    if autoglm("verify", str(manifest)) != 0:
        return False

    step("corrupt one shard and delete another, as a half-finished download would")
    shard = weights / "model-00002-of-00003.safetensors"
    with open(shard, "r+b") as handle:
        handle.seek(1 << 20)
        handle.write(b"\0" * 16)
    (weights / "model-00003-of-00003.safetensors").unlink()
    code = autoglm("verify", str(manifest))
    print(f"exit code {code} (1 = a mismatch or a missing file)")
    if code != 1:
        return False

    step("what a CI job runs: only the files that need attention, and the exit code")
    code = autoglm("verify", str(manifest), "--quiet")
    print(f"exit code {code}")
    return code == 1


def main() -> int:
    autoglm("env-check")  # informative: a missing recommended tool is not a demo failure
    with tempfile.TemporaryDirectory(prefix="autoglm-demo-") as tmp:
        ok = verify_round_trip(Path(tmp))
    print("\ndemo finished" if ok else "\ndemo FAILED: a step above did not do what it says", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

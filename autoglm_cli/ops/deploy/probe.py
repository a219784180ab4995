"""The container's HEALTHCHECK: exit 0 when the gateway's `/readyz` answers 200.

Runs inside the image (`python -m autoglm_cli.ops.deploy.probe`); standard library
and the config loader only, so it starts fast and needs no curl in the image.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main() -> int:
    from ...config import load_config

    port = load_config().gateway.port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"readyz: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

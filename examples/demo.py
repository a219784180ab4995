"""`make demo`: the main job on the embedded default, end to end.

    autoglm redeploy --config examples/local.yaml

With no hub reachable (the default) it builds a tiny model here and serves it from
a local hub (`autoglm_cli.testing.hub_server`, reached through HF_ENDPOINT as any
hub would be), so every step runs for real: env-check, fetch-weights (resumable,
hashed while downloading), verify (sha256 against the hub's metadata), deploy
(a background `autoglm serve`, health-gated) and health. Then it sends a chat
completion through the gateway, prints the answer, and leaves the deployment
running so the README's next examples (`autoglm health --config
examples/local.yaml`, ...) work; it ends by printing them. The tiny model stays in
.autoglm/demo/hub, which `python -m autoglm_cli.testing.hub_server` serves again.

    AUTOGLM_DEMO_MODEL=HuggingFaceTB/SmolLM2-135M-Instruct make demo

fetches that model from the real hub instead (a machine with internet).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "local.yaml"
DEMO_REPO = "autoglm-demo/tiny-chat"
# The demo's local hub serves every ORG/NAME folder here; the README starts it again
# with `python -m autoglm_cli.testing.hub_server .autoglm/demo/hub --port 8799`.
HUB_DIR = ROOT / ".autoglm" / "demo" / "hub"
HUB_PORT = 8799

NEXT_STEPS = f"""
The deployment keeps running. Next, from {ROOT}:

  source .venv/bin/activate     # puts `autoglm` on PATH (or run .venv/bin/autoglm)
  autoglm health --config examples/local.yaml
  autoglm deploy --status --config examples/local.yaml
  autoglm --help                # every command; `autoglm COMMAND --help` has examples

  # the demo's hub again (offline), for commands that fetch the tiny model:
  python -m autoglm_cli.testing.hub_server .autoglm/demo/hub --port {HUB_PORT} &
  export HF_ENDPOINT=http://127.0.0.1:{HUB_PORT}
  autoglm redeploy --config examples/local.yaml

  autoglm deploy --stop --config examples/local.yaml    # when you are done
"""


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def autoglm(*args: str, env: dict[str, str], capture: bool = False) -> subprocess.CompletedProcess:
    print(f"$ autoglm {' '.join(args)}", flush=True)
    return subprocess.run(
        [sys.executable, "-m", "autoglm_cli", *args],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )


@contextlib.contextmanager
def model_source(env: dict[str, str]):
    """A local hub serving a freshly built tiny model, or the real hub for AUTOGLM_DEMO_MODEL."""
    real = os.environ.get("AUTOGLM_DEMO_MODEL")
    if real:
        say(f"model: {real} from the hub ({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')})")
        env["AUTOGLM_MODELS__DEMO__SOURCE"] = real
        yield real
        return
    from autoglm_cli.testing.hub_server import HubServer
    from autoglm_cli.testing.tiny_model import build_tiny_model

    model_dir = HUB_DIR / DEMO_REPO
    if (model_dir / "config.json").is_file():
        say(f"no hub needed: the tiny chat model built by an earlier demo, in {model_dir.relative_to(ROOT)}")
    else:
        say("no hub needed: building a tiny chat model (Llama, 2 layers, random weights)")
        started = time.perf_counter()
        HUB_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tiny-chat-", dir=HUB_DIR) as tmp:
            built = build_tiny_model(Path(tmp) / "tiny-chat", shards=2)
            model_dir.parent.mkdir(parents=True, exist_ok=True)
            built.rename(model_dir)  # whole or not at all: a half-built model is never served
        print(f"built in {time.perf_counter() - started:.1f} s: {model_dir.relative_to(ROOT)}")
    server = HubServer()
    server.add_repo(DEMO_REPO, model_dir)
    with server as endpoint:
        print(f"serving it as {DEMO_REPO} from a local hub at {endpoint}")
        env["HF_ENDPOINT"] = endpoint
        yield DEMO_REPO


def chat(url: str, key: str, model: str) -> str:
    """One chat completion through the gateway with the official openai client."""
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key=key, timeout=60, max_retries=0)
    for attempt in range(4):
        try:
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi! Who are you?"}], max_tokens=16
            )
            return reply.choices[0].message.content or ""
        except AuthenticationError:
            # A service that was already running re-reads its keys file about once a second.
            if attempt == 3:
                raise
            time.sleep(1)
    return ""


def main() -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state = ROOT / ".autoglm" / "demo"
    with model_source(env):
        say("an API key for the demo's request (only its hash is stored)")
        created = autoglm(
            "keys",
            "create",
            "--name",
            "demo",
            "--keys-file",
            str(state / "keys.json"),
            "--quiet",
            env=env,
            capture=True,
        )
        if created.returncode != 0:
            return created.returncode
        key = created.stdout.strip().splitlines()[-1]
        print("created; not shown (a secret)")

        say("redeploy: clone -> env-check -> migrate-cache -> fetch-weights -> verify -> deploy -> health")
        code = autoglm("redeploy", "--config", str(CONFIG), env=env).returncode
        if code != 0:
            print(f"\nredeploy exited {code}; the summary above says which step failed and why")
            autoglm("deploy", "--stop", "--config", str(CONFIG), env=env)
            return code
        say("a chat completion through the gateway (the official openai client, the demo's key)")
        from autoglm_cli.config import load_config

        config = load_config(CONFIG, environ=env)
        url = f"http://{config.gateway.host}:{config.gateway.port}"
        answer = chat(url, key, config.model_pool.default)
        print(f"user:      Hi! Who are you?\nassistant: {answer!r}")
        if not os.environ.get("AUTOGLM_DEMO_MODEL"):
            print("(random weights: the words are nonsense; the path they took is real)")
    say(f"done: {url} serves {config.model_pool.default}")
    print(NEXT_STEPS, end="")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())

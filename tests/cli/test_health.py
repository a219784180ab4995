"""`autoglm health` without a deployment: bare URLs, --watch, the usage errors."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading

from autoglm_cli.testing.servers import free_port


def test_nothing_recorded_is_a_usage_error(cli, tmp_path):
    result = cli("health", "--state-dir", tmp_path / "state")
    assert result.exit_code == 2
    assert "no deployment is recorded" in result.stderr
    assert "--url" in result.stderr


def test_a_dead_url_fails_its_required_checks(cli):
    port = free_port()
    result = cli("health", "--url", f"http://127.0.0.1:{port}", "--json", "--timeout", "2")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in result.json["result"]["checks"]}
    assert checks["liveness"]["status"] == "fail" and checks["liveness"]["required"]
    assert "connection refused" in checks["liveness"]["detail"]
    assert checks["state"]["status"] == "skip"  # a bare URL has no state file to compare
    assert checks["disk"]["status"] in ("ok", "warn")


class _Unhealthy(http.server.BaseHTTPRequestHandler):
    """Answers 503 to everything and counts the /healthz probes: one per --watch round."""

    probes = 0

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/healthz"):
            type(self).probes += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_watch_refreshes_until_interrupted_and_exits_with_the_last_verdict(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unhealthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoglm_cli",
            "health",
            "--url",
            f"http://127.0.0.1:{server.server_address[1]}",
            "--watch",
            "--interval",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
    )
    try:
        # Polling, not a fixed sleep: a second /healthz probe means the first round's verdict is in.
        while _Unhealthy.probes < 2 and proc.poll() is None:
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        server.shutdown()
    assert proc.returncode == 1, err
    assert "UNHEALTHY" in out
    assert "Ctrl-C to stop" in out
    assert "Traceback" not in err


def test_watch_quiet_returns_as_soon_as_a_required_check_fails(tmp_path):
    port = free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoglm_cli",
            "health",
            "--url",
            f"http://127.0.0.1:{port}",
            "--watch",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""


def test_watch_and_json_do_not_combine(cli):
    result = cli("health", "--url", "http://127.0.0.1:1", "--watch", "--json")
    assert result.exit_code == 2
    assert result.json["error"]["type"] == "UsageError"

"""`--target systemd`: a hardened unit for `autoglm serve`.

Without `--install` the unit is only rendered (and checked with
`systemd-analyze verify` where that exists). With `--install` it is written to
`deploy.systemd.unit_dir`, then `systemctl daemon-reload` and `enable --now`
(or `restart` when it already runs); the unit it replaces is kept in the state
directory so a failed health gate can put it back.

GPUs: `DevicePolicy=closed` with `DeviceAllow=char-nvidia*` (systemd globs device
group names: /dev/nvidia0.., nvidiactl, nvidia-uvm, nvidia-caps) keeps the GPUs
visible; `PrivateDevices=` is deliberately absent because it would hide them.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ... import __version__
from ...errors import EnvironmentFailure, UsageError
from ...redact import redact
from .base import LaunchContext, Liveness, Tidied
from .model_info import health_timeout, hub_cache_dir
from .state import DeploymentState, atomic_write


@dataclass(frozen=True)
class UnitCheck:
    tool: str  # "systemd-analyze verify" or "" when not available
    ok: bool
    output: str


def unit_name(name: str) -> str:
    return name if name.endswith(".service") else f"{name}.service"


# Paths the sandbox hides from the service (PrivateTmp=, ProtectHome=tmpfs): an ExecStart there fails.
HIDDEN_PREFIXES = ("/tmp", "/var/tmp", "/home", "/root", "/run/user")


def _hidden(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in HIDDEN_PREFIXES)


def check_exec_start(python: str, prefix: str) -> None:
    """Refuse a unit whose ExecStart the sandbox would hide (exit 2, with the remedy)."""
    places = (("the Python interpreter", python), ("the environment autoglm is installed in", prefix))
    for what, path in places:
        if _hidden(os.path.abspath(path)):
            raise UsageError(
                f"{what} ({path}) lies under {', '.join(HIDDEN_PREFIXES)}, which the unit's sandbox "
                "hides from the service (PrivateTmp=, ProtectHome=): its ExecStart would not start",
                remedy="Install autoglm where a system service can run it, e.g. "
                "`python3 -m venv /opt/autoglm && /opt/autoglm/bin/pip install autoglm`, "
                "and run `/opt/autoglm/bin/autoglm deploy --target systemd` from there.",
            )


def _quote(value: str) -> str:
    """A word for ExecStart= (systemd splits like a shell; % is systemd's specifier)."""
    return shlex.quote(value).replace("%", "%%")


def _model_dirs(config) -> list[str]:
    dirs = []
    for spec in config.models.values():
        local = Path(spec.source).expanduser() if spec.source else None
        if local is not None and local.is_absolute() and local.is_dir():
            dirs.append(str(local.resolve()))
    return dirs


def render_unit(ctx: LaunchContext, *, python: str | None = None, prefix: str | None = None) -> str:
    """The unit file text for this deployment (raises UsageError for an ExecStart the sandbox hides).

    The service reads its config snapshot and keys file as systemd credentials (PID 1 reads the
    root-only files; the service gets private copies in $CREDENTIALS_DIRECTORY, `%d`), its
    weights through read-only bind mounts at their own paths, and writes only to its
    StateDirectory=/CacheDirectory=. It runs as a DynamicUser= unless deploy.systemd.user names
    one. Type=notify: it is `active` once /readyz passes (runtime/sd_notify.py), not at exec.
    """
    config = ctx.config
    settings = config.deploy.systemd
    if python is None and settings.python:  # rendered for an installation elsewhere
        python = settings.python
        prefix = prefix or str(Path(python).parent.parent)
    python = python or sys.executable
    check_exec_start(python, prefix or sys.prefix)
    unit = unit_name(config.deploy.name)
    name = unit.removesuffix(".service")
    cache = hub_cache_dir(config)
    start_timeout = int(health_timeout(config, ctx.model))
    exec_start = " ".join(
        _quote(part)
        for part in (python, "-m", "autoglm_cli", "serve", "--host", ctx.host, "--port", str(ctx.port))
    )
    exec_start += " --config %d/config.yaml"  # %d: the credentials directory
    lines = [
        "# Rendered by `autoglm deploy --target systemd`; rerun it instead of editing.",
        f"# autoglm {__version__}, config {ctx.snapshot.hash[:16]}, model {ctx.model.name}",
        "[Unit]",
        f"Description=autoglm LLM service {config.deploy.name} (OpenAI-compatible gateway + Dask workers)",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=600",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        # READY=1 once /readyz passes; EXTEND_TIMEOUT_USEC while a large model loads (up to
        # three times this budget); WATCHDOG=1 from the event loop while it serves.
        f"TimeoutStartSec={start_timeout}",
        f"Environment=AUTOGLM_START_BUDGET_S={start_timeout * 3}",
        "WatchdogSec=60",
        "TimeoutStopSec=45",
        "KillMode=mixed",
        "Restart=always",
        "RestartSec=5",
        f"SyslogIdentifier={name}",
    ]
    if settings.user:
        lines.append(f"User={settings.user}")
    else:
        lines.append("DynamicUser=yes")
    # The service's own writable folders, named apart from deploy's records and the weights
    # (/var/lib/autoglm, /var/cache/autoglm are natural choices for those), which systemd
    # would otherwise hand over to the dynamic user.
    own = f"{name}-service"
    lines += [
        f"StateDirectory={own}",
        f"CacheDirectory={own}",
        f"WorkingDirectory=/var/lib/{own}",
        # The config snapshot (and keys) may hold secrets: root-only files, passed as credentials.
        f"LoadCredential=config.yaml:{ctx.snapshot.path}",
    ]
    if config.gateway.auth:
        from .health_key import keys_file_for

        lines += [
            f"LoadCredential=keys.json:{keys_file_for(config)}",
            "Environment=AUTOGLM_GATEWAY__KEYS_FILE=%d/keys.json",
        ]
    if config.deploy.env_file:
        # Secrets (HF_TOKEN, upstream API keys) stay in this file, read at start, never in the unit.
        lines.append(f"EnvironmentFile={Path(config.deploy.env_file).expanduser().absolute()}")
    lines += [
        "Environment=PYTHONUNBUFFERED=1",
        f"Environment=HF_HUB_CACHE={cache}",
        f"Environment=HF_HOME=%C/{own}",
        "Environment=HF_HUB_OFFLINE=1",
        f"ExecStart={exec_start}",
        "",
        "# Sandbox (systemd-analyze security: exposure <= 3.0 with the GPUs reachable)",
        f"BindReadOnlyPaths=-{cache}",
        *(f"BindReadOnlyPaths=-{d}" for d in _model_dirs(config)),
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=tmpfs",
        "PrivateTmp=yes",
        "PrivateMounts=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "KeyringMode=private",
        "UMask=0077",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "SystemCallErrorNumber=EPERM",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "# GPUs stay visible: every NVIDIA device group, present and future (no PrivateDevices=)",
        "DevicePolicy=closed",
        "DeviceAllow=char-nvidia* rw",
    ]
    lines += [
        f"DeviceAllow={node} rw" for node in sorted(glob.glob("/dev/nvidia*")) if not os.path.isdir(node)
    ]
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def verify_unit(text: str, name: str) -> UnitCheck:
    """`systemd-analyze verify` on the rendered text, where the tool exists."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return UnitCheck("", True, "systemd-analyze not found; unit not verified")
    with tempfile.TemporaryDirectory(prefix="autoglm-unit-") as tmp:
        path = Path(tmp) / unit_name(name)
        path.write_text(text)
        proc = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, cwd=tmp)
    output = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if line.strip())
    return UnitCheck("systemd-analyze verify", proc.returncode == 0, redact(output))


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise EnvironmentFailure(
            f"`systemctl {' '.join(args)}` failed: {redact(proc.stderr.strip())[:300]}",
            remedy="Run deploy as root (or with sudo) on a machine booted with systemd.",
        )
    return proc


class SystemdTarget:
    name = "systemd"
    swaps = False  # one unit per name: a redeploy restarts it (Type=notify: active once ready)

    def plan(self, ctx: LaunchContext) -> list[str]:
        unit = unit_name(ctx.config.deploy.name)
        return [
            f"write {Path(ctx.config.deploy.systemd.unit_dir) / unit}",
            f"systemctl daemon-reload; systemctl enable --now {unit} (restart when running)",
        ]

    def prepare(self, ctx: LaunchContext) -> None:
        if not systemd_running():
            raise EnvironmentFailure(
                "systemd is not running on this machine (no /run/systemd/system)",
                remedy="Install on a systemd host, or render the unit without --install and copy it there.",
            )
        check = verify_unit(render_unit(ctx), ctx.config.deploy.name)
        if not check.ok:
            raise EnvironmentFailure(f"the rendered unit does not verify:\n{check.output}")

    def launch(self, ctx: LaunchContext, *, side_port: int, beside: bool) -> DeploymentState:
        unit = unit_name(ctx.config.deploy.name)
        text = render_unit(ctx)
        copy = ctx.state.ensure().root / "units" / f"{ctx.snapshot.hash[:16]}.service"
        atomic_write(copy, text)
        path = Path(ctx.config.deploy.systemd.unit_dir) / unit
        self._install(copy, path, unit)
        return ctx.new_state(
            self.name,
            unit_name=unit,
            unit_path=str(path),
            log_path=str(copy),  # the unit file this deployment runs from
        )

    def _install(self, source: Path, path: Path, unit: str) -> None:
        try:
            atomic_write(path, source.read_text())
        except OSError as exc:
            raise EnvironmentFailure(
                f"cannot write {path}: {exc.strerror or exc}", remedy="Run deploy as root (or with sudo)."
            ) from None
        _systemctl("daemon-reload")
        active = _systemctl("is-active", unit, check=False).stdout.strip() == "active"
        _systemctl("enable", unit)
        _systemctl("restart" if active else "start", unit)

    def _main_pid(self, unit: str) -> int:
        out = _systemctl("show", "-p", "MainPID", "--value", unit, check=False).stdout.strip()
        return int(out) if out.isdigit() else 0

    def liveness(self, state: DeploymentState) -> Liveness:
        if not systemd_running():
            return Liveness(False, "systemd is not running here")
        unit = state.unit_name or unit_name(state.name)
        status = _systemctl("is-active", unit, check=False).stdout.strip()
        return Liveness(status == "active", f"{unit} is {status}, main pid {self._main_pid(unit)}")

    def owns_port(self, state: DeploymentState, port: int) -> bool:
        from .ports import listening_pids

        pid = self._main_pid(state.unit_name or unit_name(state.name))
        if not pid:
            return False
        import psutil

        try:
            tree = {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
        except psutil.NoSuchProcess:
            return False
        return any(p in tree for p in listening_pids(port))

    def retire(self, state: DeploymentState) -> None:
        # Nothing to stop first: installing the new unit restarts the service.
        pass

    def join(self, state: DeploymentState) -> None:
        pass

    def promote(self, state: DeploymentState) -> DeploymentState:
        return state

    def restore(self, state: DeploymentState, *, side_port: int, beside: bool) -> DeploymentState:
        copy = Path(state.log_path or "")
        if not copy.is_file():
            raise EnvironmentFailure(f"the previous unit file {copy} is gone; nothing to restore")
        self._install(copy, Path(state.unit_path or ""), state.unit_name or unit_name(state.name))
        return replace(state, status="starting", started_at=time.time())

    def discard(self, state: DeploymentState) -> None:
        unit = state.unit_name or unit_name(state.name)
        _systemctl("disable", "--now", unit, check=False)
        if state.unit_path:
            Path(state.unit_path).unlink(missing_ok=True)
        _systemctl("daemon-reload", check=False)

    def tidy(self, live: DeploymentState) -> Tidied:
        return Tidied()  # one unit file per deployment name, rewritten in place

    def stop(self, state: DeploymentState) -> None:
        _systemctl("disable", "--now", state.unit_name or unit_name(state.name))

    def logs(self, state: DeploymentState, lines: int = 40) -> str:
        if shutil.which("journalctl") is None:
            return ""
        proc = subprocess.run(self.journal_command(state, lines), capture_output=True, text=True)
        return redact(proc.stdout)

    def journal_command(self, state: DeploymentState, lines: int, follow: bool = False) -> list[str]:
        unit = state.unit_name or unit_name(state.name)
        return ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", *(["-f"] if follow else [])]

    def follow(self, state: DeploymentState, lines: int = 40):
        if shutil.which("journalctl") is None:
            raise EnvironmentFailure("journalctl is not installed here; no journal to follow")
        command = self.journal_command(state, lines, follow=True)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                yield redact(line.rstrip("\n"))
        finally:
            proc.terminate()
            proc.wait(timeout=5)

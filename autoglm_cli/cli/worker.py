"""`autoglm worker`: join this machine to a Dask cluster as a model worker, or run engines.

A thin wrapper over `dask worker`: one thread per worker process, the autoglm
worker plugin preloaded (it starts loading the model as soon as the worker is
up), the config passed on through `$AUTOGLM_CONFIG`. Runs until interrupted.

With `--engine vllm|sglang` it starts and supervises one engine server per GPU set
instead (`runtime/engines`): each is a node the gateway reaches over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .context import start
from .options import ConfigOption, DryRunOption, JsonOption, QuietOption

HELP = "Join this machine to a Dask cluster as a model worker"
EXAMPLES = (
    "autoglm worker tcp://10.0.0.5:8786 --config autoglm.yaml",
    "autoglm worker tcp://10.0.0.5:8786 --dry-run -- --nthreads 2  # for dask",
)
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def command(
    ctx: typer.Context,
    scheduler: Annotated[
        Optional[str],
        typer.Argument(help="The Dask scheduler, e.g. tcp://10.0.0.5:8786 (not with --engine)."),
    ] = None,
    config: ConfigOption = None,
    engine: Annotated[
        Optional[str],
        typer.Option("--engine", help="Run and supervise engine servers instead: vllm or sglang."),
    ] = None,
    gpus: Annotated[
        Optional[list[str]],
        typer.Option("--gpus", help="With --engine: a GPU set, e.g. 0 or 0,1 (repeat; engines.gpus)."),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option(
            "--port", min=1, max=65535, help="With --engine: the first engine's port (engines.base_port)."
        ),
    ] = None,
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="Model to load (repeat; default: model_pool.default)."),
    ] = None,
    nworkers: Annotated[int, typer.Option("--nworkers", min=1, help="Worker processes on this machine.")] = 1,
    name: Annotated[
        Optional[str], typer.Option("--name", help="Worker name (Dask appends -0, -1, ...).")
    ] = None,
    host: Annotated[
        Optional[str], typer.Option("--host", help="Address the worker listens on and advertises.")
    ] = None,
    memory_limit: Annotated[
        Optional[str], typer.Option("--memory-limit", help="Per process, e.g. 24GiB (workers.memory_limit).")
    ] = None,
    dry_run: DryRunOption = False,
    json: JsonOption = False,
    quiet: QuietOption = False,
) -> int:
    """Extra arguments after `--` go to `dask worker` unchanged."""
    run = start(ctx, "worker", json=json, quiet=quiet, config_path=config)
    from ..ops import worker as worker_ops

    cfg = run.config
    if engine is not None:
        return _engines(run, worker_ops, engine, model, gpus, host, port, dry_run)
    if scheduler is None:
        from ..errors import UsageError

        raise UsageError("give the Dask scheduler address, or --engine vllm|sglang")
    plan = worker_ops.plan(
        cfg,
        scheduler=scheduler,
        models=tuple(model or ()),
        nworkers=nworkers,
        name=name,
        host=host,
        memory_limit=memory_limit,
        extra=tuple(ctx.args),
        config_path=Path(cfg.source) if cfg.source else None,
    )
    if dry_run:
        return run.out.result(plan, human=lambda console: console.print(" ".join(plan.command)))
    run.out.note(f"joining {scheduler} with {nworkers} worker process(es) for {', '.join(plan.models)}")
    report = worker_ops.run(plan)
    return run.out.result(report, exit_code=report.exit_code)


def _engines(run, worker_ops, engine, model, gpus, host, port, dry_run) -> int:
    cfg = run.config
    if model and len(model) > 1:
        from ..errors import UsageError

        raise UsageError("--engine serves one model; give --model once")
    plan = worker_ops.plan_engines(
        cfg,
        engine=engine,
        model=model[0] if model else None,
        gpus=tuple(gpus or ()),
        host=host,
        base_port=port,
    )
    if dry_run:
        return run.out.result(
            plan,
            human=lambda console: [
                console.print(" ".join(e.argv), markup=False, soft_wrap=True) for e in plan.engines
            ],
        )
    from ..runtime.logs import adopt, setup_logging

    setup_logging("WARNING")
    adopt("autoglm.engine", "INFO")  # the engines' own output is this worker's log
    run.out.note(
        f"starting {len(plan.engines)} {engine} engine(s) for {plan.model}; "
        f"gateway endpoints: {', '.join(plan.endpoints)}"
    )
    report = worker_ops.run_engines(plan, on_ready=lambda e: run.out.note(f"{e.label} ready at {e.base_url}"))
    return run.out.result(report, exit_code=report.exit_code)

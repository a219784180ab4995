"""The task API of the original design: submit with a priority, poll, cancel.

`POST /v1/tasks` answers 202 at once with the task's id; `GET /v1/tasks/{id}`
shows its status and, when done, the chat.completion / text_completion object;
`DELETE /v1/tasks/{id}` cancels it (queued: removed; running: stopped at the next
token). A task is visible only to the key that created it, for `gateway.task_ttl`
after it finished.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..auth import KeyRecord
from ..errors import ApiError, InvalidRequest
from ..prefix import prompt_hashes
from ..service import Job
from .routes_openai import build_request, chat_body, completion_body, priority_of
from .schemas import CompletionRequest, TaskRequest
from .security import require

router = APIRouter()


def _task_view(job: Job) -> dict:
    view = {
        "id": job.id,
        "object": "task",
        "status": job.status,
        "priority": job.task.priority.name.lower(),
        "model": job.request.model,
        "created": int(job.created),
        "attempts": job.task.attempts,
    }
    if job.fallback_from:
        view["fallback_from"] = job.fallback_from
    if job.result is not None:
        make = chat_body if job.request.kind == "chat" else completion_body
        view["result"] = make(job, job.result)
    if job.error is not None:
        view["error"] = job.error.body()["error"]
    return view


def _find(request: Request, task_id: str, key: KeyRecord) -> Job:
    job = request.app.state.gateway.runtime.get(task_id)
    if job is None or not job.keep or job.key_id != key.id:
        raise ApiError(
            f"no task {task_id!r}", status=404, type="invalid_request_error", code="task_not_found"
        )
    return job


@router.post("/v1/tasks", status_code=202)
async def create_task(body: TaskRequest, request: Request, key: KeyRecord = Depends(require("model:infer"))):
    if body.stream:
        raise InvalidRequest("tasks run in the background; stream with /v1/chat/completions", param="stream")
    if (body.messages is None) == (body.prompt is None):
        raise InvalidRequest("give either `messages` (a chat) or `prompt` (a completion)", param="messages")
    runtime = request.app.state.gateway.runtime
    raw = json.loads(await request.body())  # engines get it as it is; in-process models check it
    if body.messages is not None:
        gen, tokens = build_request(body, "chat", runtime, key, "task", raw=raw)
    else:
        as_completion = CompletionRequest.model_validate(body.model_dump(exclude={"messages"}))
        gen, tokens = build_request(as_completion, "completion", runtime, key, "task", raw=raw)
    hashes = (
        prompt_hashes(messages=raw.get("messages"))
        if body.messages is not None
        else prompt_hashes(prompt=gen.prompt)
    )
    job = runtime.submit(
        gen,
        priority=priority_of(body, request),
        key_id=key.id,
        keep=True,
        prompt_tokens=tokens,
        prefix_hashes=hashes,
    )
    return JSONResponse(_task_view(job), status_code=202)


@router.get("/v1/tasks/{task_id}")
async def get_task(task_id: str, request: Request, key: KeyRecord = Depends(require("model:infer"))):
    return _task_view(_find(request, task_id, key))


@router.delete("/v1/tasks/{task_id}")
async def cancel_task(task_id: str, request: Request, key: KeyRecord = Depends(require("model:infer"))):
    job = _find(request, task_id, key)
    await request.app.state.gateway.runtime.cancel(job)
    return _task_view(job)

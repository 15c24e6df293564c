"""Room exports: members download the history as Markdown or JSON, streamed."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, stream_with_context
from flask_login import current_user

from discux.export import service
from discux.rooms.access import room_for, sign_in_required

bp = Blueprint("export", __name__)


@bp.get("/rooms/<room_id>/export.md")
@sign_in_required
def markdown(room_id: str):
    room, _ = room_for(current_user, room_id, "export")
    return _download(service.export_markdown(room), "text/markdown; charset=utf-8",
                     service.download_name(room, "md"))


@bp.get("/rooms/<room_id>/export.json")
@sign_in_required
def json(room_id: str):
    room, _ = room_for(current_user, room_id, "export")
    return _download(service.export_json(room), "application/json",
                     service.download_name(room, "json"))


def _download(chunks: Iterator[str], mimetype: str, filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response

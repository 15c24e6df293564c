"""The JSON shape of each thing the API returns (docs/api.md and docs/openapi.yaml show them).

Times are UTC in ISO 8601 with milliseconds, as in the socket events' message payloads.
"""

from __future__ import annotations

from datetime import datetime

from discux import plans
from discux.models import Agent, Room, RoomSettings, User
from discux.rooms.panel import AgentRow, InvitationRow, PersonRow
from discux.search.service import SearchHit, SearchResults


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


def user_shape(user: User) -> dict:
    return {
        "id": user.id,
        "name": user.display_name,
        "email": user.email,
        "plan": user.subscription,
        "limits": {
            "agents": user.max_agents,
            "active_rooms": user.max_rooms,
            "messages_per_month": user.max_messages_per_month,
        },
        "used": {
            "agents": plans.agents_used(user),
            "active_rooms": plans.active_rooms_used(user),
            "messages_this_month": plans.messages_used_this_month(user),
        },
    }


def agent_shape(agent: Agent, viewer: User) -> dict:
    return {
        "id": agent.id,
        "name": agent.name,
        "prompt": agent.prompt,
        "emoji": agent.emoji,
        "color": agent.color,
        "style": agent.style,
        "is_public": bool(agent.is_public),
        "model": agent.model,
        "usage_count": agent.usage_count or 0,
        "created_by": agent.created_by,
        "owned": agent.created_by == viewer.id,
        "created_at": iso(agent.created_at),
        "updated_at": iso(agent.updated_at),
    }


def settings_shape(settings: RoomSettings) -> dict:
    return {
        "max_agents": settings.max_agents,
        "allow_agent_creation": bool(settings.allow_agent_creation),
        "auto_summarize": bool(settings.auto_summarize),
    }


def room_shape(room: Room, role: str, **extra) -> dict:
    """A room as the viewer sees it: their `role` in it, its settings, and any `extra` fields."""
    return {
        "id": room.id,
        "name": room.name,
        "description": room.description,
        "is_active": bool(room.is_active),
        "created_by": room.created_by,
        "created_at": iso(room.created_at),
        "updated_at": iso(room.updated_at),
        "role": role,
        "settings": settings_shape(room.settings),
        **extra,
    }


def member_shape(row: PersonRow) -> dict:
    return {
        "user_id": row.user.id,
        "name": row.user.display_name,
        "role": row.participant.role,
        "joined_at": iso(row.participant.joined_at),
        "manageable": row.manageable,
    }


def room_agent_shape(row: AgentRow) -> dict:
    agent = row.agent
    return {
        "id": agent.id,
        "name": agent.name,
        "emoji": agent.emoji,
        "color": agent.color,
        "style": agent.style,
        "added_by": row.room_agent.added_by,
        "added_at": iso(row.room_agent.added_at),
    }


def invitation_shape(row: InvitationRow) -> dict:
    invitation = row.invitation
    return {
        "id": invitation.id,
        "room_id": invitation.room_id,
        "email": invitation.email,
        "status": row.status,
        "invited_by": invitation.invited_by,
        "created_at": iso(invitation.created_at),
        "expires_at": iso(invitation.expires_at),
        "used_at": iso(invitation.used_at),
        "revoked_at": iso(invitation.revoked_at),
    }


def search_hit_shape(hit: SearchHit) -> dict:
    return {
        "message_id": hit.message_id,
        "room_id": hit.room_id,
        "room_name": hit.room_name,
        "type": hit.type,
        "sender_name": hit.sender_name,
        "sender_emoji": hit.sender_emoji,
        "sender_color": hit.sender_color,
        "timestamp": iso(hit.timestamp),
        "content": hit.content,
        # Escaped text with <mark> around the matches, safe to insert as HTML.
        "snippet_html": str(hit.snippet),
    }


def search_results_shape(results: SearchResults) -> dict:
    return {
        "query": str(results.query),
        "order": results.order,
        "room_id": results.room_id,
        "results": [search_hit_shape(hit) for hit in results.hits],
        "per_page": results.per_page,
        "page": results.page if results.order == "relevance" else None,
        "next_page": results.next_page,
        "next_before": results.next_before,
        "notice": results.notice,
    }

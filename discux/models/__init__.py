"""All models, importable from one place."""

from discux.models.agents import STYLES, Agent
from discux.models.auth import PLANS, Account, ApiToken, Session, User, VerificationToken
from discux.models.briefs import BRIEF_SOURCES, RoomBrief
from discux.models.imports import ImportedRow
from discux.models.invitations import RoomInvitation
from discux.models.ledger import (
    USAGE_KINDS,
    USAGE_STATES,
    InstanceSettings,
    ModelPrice,
    UsageEntry,
)
from discux.models.messages import MESSAGE_TYPES, Message, MessageDeletion, MessageMention
from discux.models.rooms import ROLES, Room, RoomAgent, RoomParticipant, RoomSettings
from discux.models.turns import TURN_KINDS, TURN_STATES, AgentGeneration, AgentTurn
from discux.models.usage import UsageCounter

__all__ = [
    "BRIEF_SOURCES", "MESSAGE_TYPES", "PLANS", "ROLES", "STYLES", "TURN_KINDS", "TURN_STATES",
    "USAGE_KINDS", "USAGE_STATES", "InstanceSettings", "ModelPrice", "UsageEntry",
    "Account", "Agent", "AgentGeneration", "AgentTurn", "ApiToken", "ImportedRow", "Message",
    "MessageDeletion", "MessageMention", "Room", "RoomAgent",
    "RoomBrief", "RoomInvitation", "RoomParticipant", "RoomSettings", "Session", "UsageCounter", "User",
    "VerificationToken",
]

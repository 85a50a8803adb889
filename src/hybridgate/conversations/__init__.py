"""Conversation state for the Responses API, kept by the gateway for any route.

``store: true`` answers are sealed (encrypted with a key derived from the
deployment secret) and kept per team; ``previous_response_id`` replays the
whole history to whichever route the next turn's policy permits.
"""

from hybridgate.conversations.sealing import Sealer
from hybridgate.conversations.store import ConversationStore, StoredTurn

__all__ = ["ConversationStore", "Sealer", "StoredTurn"]

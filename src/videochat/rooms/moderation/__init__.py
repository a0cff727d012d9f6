"""Moderation: roles, kick, ban, mute and expiring invites.

Ranks: owner > moderator > member (rooms.policy). A moderator acts only on people
ranked below them; only the owner promotes or demotes. Every action is announced to
the room as a ``moderation`` frame once committed, and kicks and bans also close the
person's sockets on every instance (through the hub, so it works across instances).
"""

"""The lobby of a private room: outsiders knock, moderators admit or deny.

A person who is not a member of a private room (and has no invite) knocks with
``POST /rooms/{id}/lobby``; the owner and moderators see who waits and get ``lobby``
frames on their sockets; admitting makes the person a member. The knocker needs no
membership to follow their knock: they poll ``GET /rooms/{id}/lobby/me``.

Limits: one knock per person and room (a second knock while one waits returns it),
``lobby.max_size`` people waiting per room, ``lobby.knocks`` knocks per person per
window, and a knock nobody answered expires after ``lobby.knock_ttl_seconds``.
Banned people cannot knock; a ban also drops their knock.
"""

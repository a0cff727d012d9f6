"""Rooms, their members and roles."""

"""Schedules (full rebuilds), filled in by issue #3."""

SCHEDULES: list = []

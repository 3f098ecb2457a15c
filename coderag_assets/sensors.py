"""Sensors (watch mode), filled in by issue #3."""

SENSORS: list = []

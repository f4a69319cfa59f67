"""Shared fixtures: devices."""

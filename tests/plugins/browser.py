"""Shared fixtures: browser."""

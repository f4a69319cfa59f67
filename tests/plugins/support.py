"""Shared fixtures: support."""

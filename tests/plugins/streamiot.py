"""Shared fixtures: streamiot."""

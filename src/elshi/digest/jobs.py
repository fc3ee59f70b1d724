"""Digest tasks."""

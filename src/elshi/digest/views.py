"""Digest pages (filled in by the digest step)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

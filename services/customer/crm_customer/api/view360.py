"""360 view routes (being built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/customers", tags=["360 view"])

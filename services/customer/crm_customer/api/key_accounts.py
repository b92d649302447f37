"""Key accounts routes (being built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/key-accounts", tags=["Key accounts"])

"""Billing accounts routes (being built)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/accounts", tags=["Billing accounts"])

"""(being written)"""

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1")
pages = APIRouter()

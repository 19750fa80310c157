"""Loads the Lua sources (``lua/*.lua``) once; scripts that need helpers get ``common.lua``."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def lua_source(name: str) -> str:
    lua = files(__package__) / "lua"
    body = (lua / f"{name}.lua").read_text(encoding="utf-8")
    if name in ("admit", "settle", "settle_parts", "spend"):
        return (lua / "common.lua").read_text(encoding="utf-8") + "\n" + body
    return body

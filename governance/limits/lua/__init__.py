"""Lua sources of the limits scripts (a package so wheels ship the *.lua files)."""

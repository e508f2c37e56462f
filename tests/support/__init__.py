"""Shared test helpers: worlds, minted coins, whole systems, join kits."""

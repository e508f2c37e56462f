"""The merchant's refunds (issue 12, item 3; docs/protocol.md "Refunds"): :mod:`.desk` signs
refund permissions for paid requests, :mod:`.store` keeps them, :mod:`.routes` serves them."""

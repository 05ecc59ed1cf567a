"""The `winograd` algorithm family (cells register themselves on import)."""

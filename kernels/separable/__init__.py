"""The `separable` algorithm family (cells register themselves on import)."""

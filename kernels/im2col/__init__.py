"""The `im2col` algorithm family (cells register themselves on import)."""

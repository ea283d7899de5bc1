"""Applications built over the library and the service (the demo store)."""

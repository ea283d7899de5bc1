"""CLI commands of this subsystem (filled in by its owner)."""


def register(app) -> None:
    """Add this module's commands to the deepshelf Typer app."""

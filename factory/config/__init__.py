"""Config composition, schemas and validation; light to import (no torch)."""
from factory.config import resolvers
from factory.config.compose import CONFIG_DIR, compose
from factory.config.validate import validate

resolvers.register()

__all__ = ["CONFIG_DIR", "compose", "validate"]

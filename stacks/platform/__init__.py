"""The tool stack as Helm releases: see README.md in this folder."""

from stacks.platform.component import Platform, PlatformArgs
from stacks.platform.config import ObjectStore, PlatformConfig, Serving

__all__ = ["ObjectStore", "Platform", "PlatformArgs", "PlatformConfig", "Serving"]

"""The composition root: the returns platforms this build plugs in, and their settings.

This is the one place outside the platform folders (``sources/<name>/``) that names a
returns platform. The core reads them from ``Settings.platforms``; to add a platform,
write its folder and list it here (docs/architecture.md, "Adding a returns platform").
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field

from returnbridge import config
from returnbridge.returns_platform import Registry
from returnbridge.sources.loop.platform import LoopPlatform
from returnbridge.sources.loop.settings import LoopSettings
from returnbridge.sources.zigzag.platform import ZigZagPlatform
from returnbridge.sources.zigzag.settings import ZigZagSettings

PLATFORMS = Registry((LoopPlatform(), ZigZagPlatform()))


class Settings(config.Settings):
    """The whole configuration: the core's sections and one per returns platform."""

    platforms: ClassVar[Registry] = PLATFORMS
    loop: LoopSettings = Field(default_factory=LoopSettings)
    zigzag: ZigZagSettings = Field(default_factory=ZigZagSettings)


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the configuration (``config.load_settings_as``) with every platform's section."""
    return config.load_settings_as(Settings, path, **overrides)

"""Per-instance rate limiting over a shared store: `Limiter` decides, `OverrideSource` says
which limits apply. Depends only on the interfaces in core.ratelimit.store."""

from .config import LimiterConfig, config_from
from .limiter import Limiter
from .overrides import OverrideSource

__all__ = ["Limiter", "LimiterConfig", "OverrideSource", "config_from"]

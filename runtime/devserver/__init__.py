"""The dev server (``shardsim dev``): a Wrangler project's Python Worker on 127.0.0.1.

HTTP/1.1 comes from h11 (websockets' server refuses request bodies);
websocket upgrades the Worker accepts are handed to websockets, which owns
every websocket connection. See DESIGN.md, "Dev server".
"""

from __future__ import annotations

from ._admin import ADMIN_PREFIX as ADMIN_PREFIX
from ._handoff import WebSocketOptions as WebSocketOptions
from ._server import (
    DevServer as DevServer,
    DevServerStatistics as DevServerStatistics,
    UpgradeRoute as UpgradeRoute,
)
from ._worker import (
    NotEmulatedError as NotEmulatedError,
    WorkerLoadError as WorkerLoadError,
)
from ._wrangler import (
    ConfigError as ConfigError,
    WranglerConfig as WranglerConfig,
    load_config as load_config,
    parse_dotenv as parse_dotenv,
    parse_jsonc as parse_jsonc,
)

__all__ = [
    "ADMIN_PREFIX",
    "ConfigError",
    "DevServer",
    "DevServerStatistics",
    "NotEmulatedError",
    "UpgradeRoute",
    "WebSocketOptions",
    "WorkerLoadError",
    "WranglerConfig",
    "load_config",
    "parse_dotenv",
    "parse_jsonc",
]

"""The dev server (``shardsim dev``): a Wrangler project's Python Worker on 127.0.0.1.

HTTP/1.1 comes from h11 (websockets' server refuses request bodies);
websocket upgrades the Worker accepts are handed to websockets, which owns
every websocket connection. The command line (``runtime.cli``) reads a
project through the same functions the dev server uses (``find_config``,
``load_config``, the D1 paths), so both see one project the same way.
"""

from __future__ import annotations

from ._admin import ADMIN_PREFIX as ADMIN_PREFIX
from ._d1 import (
    d1_database_path as d1_database_path,
    find_d1 as find_d1,
    migrations_folder as migrations_folder,
)
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
    find_config as find_config,
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
    "d1_database_path",
    "find_config",
    "find_d1",
    "load_config",
    "migrations_folder",
    "parse_dotenv",
    "parse_jsonc",
]

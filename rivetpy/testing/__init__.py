"""Test and benchmark peers: the real Rivet engine and the reference TypeScript runner.

Importing this package starts nothing; see :mod:`rivetpy.testing.engine` and
:mod:`rivetpy.testing.ts_runner` for the contracts.
"""

from rivetpy.testing.engine import (
    ENGINE_PACKAGE,
    ENGINE_VERSION,
    EngineApiError,
    EngineClient,
    EngineError,
    EnginePorts,
    EngineStartError,
    EngineUnavailable,
    RealEngine,
    install_engine,
)
from rivetpy.testing.ts_runner import NodeUnavailable, TsRunner, TsRunnerError

__all__ = [
    "ENGINE_PACKAGE",
    "ENGINE_VERSION",
    "EngineApiError",
    "EngineClient",
    "EngineError",
    "EnginePorts",
    "EngineStartError",
    "EngineUnavailable",
    "NodeUnavailable",
    "RealEngine",
    "TsRunner",
    "TsRunnerError",
    "install_engine",
]

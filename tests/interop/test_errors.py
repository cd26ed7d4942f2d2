"""Connection errors are clear and nothing hangs: unknown namespace, bad token, dead endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from rivetpy.runner import Runner, open_runner
from rivetpy.testing.engine import RealEngine, free_ports
from tests.interop.conftest import ENGINE_CONFIG
from tests.interop.support import (
    CountingConnector,
    InteropApp,
    connected_runner,
    create_actor,
    runner_options,
)

ADMIN_TOKEN = "interop-admin-token"


@pytest.fixture(scope="module")
def auth_engine(engine_binary: Path) -> Iterator[RealEngine]:
    with RealEngine(engine_binary, admin_token=ADMIN_TOKEN, extra_config=ENGINE_CONFIG) as running:
        yield running


async def wait_rejected(runner: Runner, connector: CountingConnector, attempts: int) -> None:
    """Until the runner made ``attempts`` connection attempts and the last one ended."""
    while len(connector.attempts) < attempts or runner.last_close is None:
        await trio.sleep(0.02)
    while runner.connections < attempts:
        await trio.sleep(0.02)


async def test_unknown_namespace_is_reported_and_retried(engine: RealEngine) -> None:
    connector = CountingConnector()
    options = runner_options(engine.endpoint, namespace="no-such-namespace")
    with trio.fail_after(10):
        async with open_runner(options, InteropApp(), connect=connector) as runner:
            await wait_rejected(runner, connector, attempts=2)
            assert runner.last_close is not None
            assert (runner.last_close.group, runner.last_close.code) == ("namespace", "not_found")
            assert runner.last_close.ray_id
            assert not runner.is_connected and runner.runner_id is None
            # The upgrade succeeded, so each attempt counts as a connection and the backoff
            # restarts at 1-1.25 s.
            gap = connector.attempts[1] - connector.attempts[0]
            assert 1.0 <= gap < 2.0, gap
            exit_started = trio.current_time()
        # Leaving the block (graceful) does not wait for a drain that cannot happen.
        assert trio.current_time() - exit_started < 1.0


@pytest.mark.parametrize(
    ("token", "expected"),
    [(None, ("guard", "missing_header")), ("wrong-token", ("api", "forbidden"))],
)
async def test_bad_token_is_reported(
    auth_engine: RealEngine, token: str | None, expected: tuple[str, str]
) -> None:
    connector = CountingConnector()
    options = runner_options(auth_engine.endpoint, token=token)
    with trio.fail_after(10):
        async with open_runner(options, InteropApp(), connect=connector) as runner:
            await wait_rejected(runner, connector, attempts=1)
            assert runner.last_close is not None
            assert (runner.last_close.group, runner.last_close.code) == expected
            assert not runner.is_connected and runner.runner_id is None


async def test_admin_token_connects(auth_engine: RealEngine) -> None:
    client = auth_engine.client()  # with the admin token
    app = InteropApp()
    with trio.fail_after(30):
        options = runner_options(auth_engine.endpoint, token=ADMIN_TOKEN)
        async with connected_runner(options, app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            await app.started(actor_id)


async def test_dead_endpoint_sets_last_error_and_backs_off() -> None:
    [port] = free_ports(1)
    connector = CountingConnector()
    options = runner_options(f"http://127.0.0.1:{port}")
    with trio.fail_after(10):
        async with open_runner(options, InteropApp(), connect=connector) as runner:
            while len(connector.attempts) < 3:
                await trio.sleep(0.02)
            assert runner.last_error is not None
            assert f"127.0.0.1:{port}" in runner.last_error, runner.last_error
            assert runner.connections == 0 and runner.last_close is None
            gaps = [b - a for a, b in zip(connector.attempts, connector.attempts[1:], strict=False)]
            # 1-1.25 s, then 2-2.5 s (plus scheduling slack)
            assert 1.0 <= gaps[0] < 1.6 and 2.0 <= gaps[1] < 2.9, gaps
            exit_started = trio.current_time()
        assert trio.current_time() - exit_started < 1.0

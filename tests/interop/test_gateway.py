"""HTTP and WebSocket traffic through the engine's gateway to an actor on the Python runner."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from rivetpy.testing.engine import RealEngine
from tests.interop.support import (
    InteropApp,
    connected_runner,
    create_actor,
    gateway_ws,
    http,
    runner_options,
)


async def test_http_by_path(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            ping = await http("GET", client.gateway_url(actor_id, "/ping"))
            assert (ping.status, ping.body) == (200, b"pong")
            assert ping.headers["content-length"] == "4"

            echo = await http(
                "POST",
                client.gateway_url(actor_id, "/sub/echo?x=1&y=two"),
                body=b"\x00hello\xff",
                headers={"x-custom": "kept"},
            )
            assert (echo.status, echo.body) == (200, b"\x00hello\xff")
            # The actor sees the path after /gateway/{id}, query included.
            assert echo.headers["x-seen-path"] == "/sub/echo?x=1&y=two"
            assert echo.headers["x-seen-method"] == "POST"

            missing = await http("GET", client.gateway_url(actor_id, "/nope"))
            assert (missing.status, missing.body) == (404, b"no route")


async def test_http_by_header(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            headers = {"x-rivet-target": "actor", "x-rivet-actor": actor_id}
            echo = await http(
                "PUT", f"{engine.endpoint}/request/echo", body=b"by header", headers=headers
            )
            assert (echo.status, echo.body) == (200, b"by header")
            # Header routing forwards the whole path.
            assert echo.headers["x-seen-path"] == "/request/echo"
            assert echo.headers["x-seen-method"] == "PUT"
            ping = await http("GET", f"{engine.endpoint}/request/ping", headers=headers)
            assert (ping.status, ping.body) == (200, b"pong")


async def test_http_one_megabyte_body_round_trips_intact(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    body = os.urandom(1 << 20)
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            echo = await http("POST", client.gateway_url(actor_id, "/echo"), body=body)
            assert echo.status == 200
            assert len(echo.body) == len(body)
            assert hashlib.sha256(echo.body).digest() == hashlib.sha256(body).digest()
            assert [(p, n) for p, _, n in app.echoed] == [("/echo", len(body))]


async def test_streamed_response_arrives_complete(engine: RealEngine) -> None:
    client = engine.client()
    app = InteropApp()
    n, size = 50, 4096
    expected = b"".join(bytes([i % 256]) * size for i in range(n))
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            assert not runner.options.stream_http_responses  # the gateway wants one response
            actor_id = (await create_actor(client, runner))["actor_id"]
            result = await http("GET", client.gateway_url(actor_id, f"/stream?n={n}&size={size}"))
            assert result.status == 200
            assert result.body == expected
            assert result.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize("routing", ["path", "protocol"])
async def test_websocket_echo_text_and_binary(engine: RealEngine, routing: str) -> None:
    client = engine.client()
    app = InteropApp()
    with trio.fail_after(30):
        async with connected_runner(runner_options(engine.endpoint), app) as runner:
            actor_id = (await create_actor(client, runner))["actor_id"]
            if routing == "path":
                url, extra = client.gateway_url(actor_id, "/ws"), []
            else:
                url, extra = (
                    f"{engine.endpoint}/ws2",
                    ["rivet_target.actor", f"rivet_actor.{actor_id}"],
                )
            async with gateway_ws(url, extra) as ws:
                assert ws.subprotocol == "rivet"
                await ws.send_message("hello")
                assert await ws.get_message() == "hello"
                await ws.send_message(b"\x00\x01binary\xff")
                assert await ws.get_message() == b"\x00\x01binary\xff"
                big = os.urandom(256 * 1024)
                await ws.send_message(big)
                assert await ws.get_message() == big
                for i in range(20):
                    await ws.send_message(f"m{i}")
                assert [await ws.get_message() for _ in range(20)] == [f"m{i}" for i in range(20)]
            # The client's close reaches the actor's handler.
            await app.wait_for(lambda: len(app.closed) == 1)
            assert app.closed[0][1] == 1000
            assert app.stops_of(actor_id) == []

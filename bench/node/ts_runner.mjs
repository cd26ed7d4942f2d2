#!/usr/bin/env node
// The REFERENCE TypeScript runner (@rivetkit/engine-runner, pinned in package.json) serving
// one "echo" actor type, for interop tests and side-by-side benchmarks against the real engine.
//
//   cd bench/node && npm ci
//   node ts_runner.mjs --endpoint http://127.0.0.1:6420 --runner-name echo-runner \
//       [--namespace default] [--token T] [--total-slots 1000] [--hibernate]
//
// stdout carries only JSON lines, one per event:
//   {"event":"connected","runner_id":...}
//   {"event":"actor_started","actor_id":...,"generation":...,"name":...,"key":...,"start_ms":...}
//   {"event":"actor_stopped","actor_id":...,"generation":...}
//   {"event":"disconnected","code":...,"reason":...}
//   {"event":"shutdown"}
// (start_ms is the wall clock of onActorStart, Date.now()). Diagnostics go to stderr;
// set RIVET_RUNNER_LOG=<pino level> to get the runner library's own logs there.
//
// Actor routes (through the gateway, /gateway/<actor_id>/<path>):
//   GET  /ping                    -> 200 "pong"
//   POST /kv-put?key=K            -> puts (utf-8 K, body); 200 {"ms": <put round trip>}
//   POST /kv-get?key=K&n=N        -> N sequential single-key gets inside the runner;
//                                    200 {"ms": [<round trip per get>], "found": <bool>}
//   POST /sleep                   -> 200 "ok", then the actor asks to sleep (runner.sleepActor)
//   any other request             -> 200 with the request body echoed
//   WebSocket, any path           -> echoes every text and binary message
// With --hibernate, WebSockets are hibernatable: their metadata is kept in this process's
// memory, every message is acked, and onActorStart restores them after a wake.
//
// SIGTERM/SIGINT: graceful runner shutdown (ToServerStopping, wait for actors to stop),
// then exit 0; exit 1 if that takes longer than 15 s.

import { parseArgs } from "node:util";

// bare-ts adds assertions when NODE_ENV=development; measure the production code path.
process.env.NODE_ENV = "production";
const { Runner } = await import("@rivetkit/engine-runner");

const { values: args } = parseArgs({
	options: {
		endpoint: { type: "string" },
		namespace: { type: "string", default: "default" },
		"runner-name": { type: "string" },
		token: { type: "string" },
		"total-slots": { type: "string", default: "1000" },
		hibernate: { type: "boolean", default: false },
	},
});
if (!args.endpoint || !args["runner-name"]) {
	process.stderr.write("usage: ts_runner.mjs --endpoint URL --runner-name NAME [...]\n");
	process.exit(2);
}

function emit(event) {
	process.stdout.write(`${JSON.stringify(event)}\n`);
}

let logger;
if (process.env.RIVET_RUNNER_LOG) {
	const { pino } = await import("pino");
	logger = pino({ level: process.env.RIVET_RUNNER_LOG }, pino.destination(2));
}

const encoder = new TextEncoder();
const HIBERNATE = args.hibernate;

/** actorId -> Map<requestIdHex, HibernatingWebSocketMetadata> (in memory, survives sleep). */
const hibernating = new Map();

function hex(buf) {
	return Buffer.from(buf).toString("hex");
}

function elapsedMs(start) {
	return Number(process.hrtime.bigint() - start) / 1e6;
}

function json(value) {
	return new Response(JSON.stringify(value), {
		status: 200,
		headers: { "content-type": "application/json" },
	});
}

async function handleFetch(runner, actorId, _gatewayId, _requestId, request) {
	const url = new URL(request.url);
	const path = url.pathname;
	if (request.method === "GET" && path === "/ping") {
		return new Response("pong", { status: 200 });
	}
	if (request.method === "POST" && path === "/kv-put") {
		const key = encoder.encode(url.searchParams.get("key") ?? "k");
		const value = new Uint8Array(await request.arrayBuffer());
		const start = process.hrtime.bigint();
		await runner.kvPut(actorId, [[key, value]]);
		return json({ ms: elapsedMs(start) });
	}
	if (request.method === "POST" && path === "/kv-get") {
		const key = encoder.encode(url.searchParams.get("key") ?? "k");
		const n = Math.max(1, Number.parseInt(url.searchParams.get("n") ?? "1", 10) || 1);
		const times = [];
		let found = false;
		for (let i = 0; i < n; i++) {
			const start = process.hrtime.bigint();
			const [value] = await runner.kvGet(actorId, [key]);
			times.push(elapsedMs(start));
			found = value !== null && value !== undefined;
		}
		return json({ ms: times, found });
	}
	if (request.method === "POST" && path === "/sleep") {
		// Let the response leave before the actor stops.
		setTimeout(() => runner.sleepActor(actorId), 0);
		return new Response("ok", { status: 200 });
	}
	const body = await request.arrayBuffer();
	return new Response(body, { status: 200 });
}

async function handleWebSocket(
	runner,
	actorId,
	ws,
	gatewayId,
	requestId,
	_request,
	path,
	headers,
	isHibernatable,
	_isRestoringHibernatable,
) {
	// Listeners must be attached synchronously (before this function returns).
	let meta;
	if (isHibernatable) {
		let perActor = hibernating.get(actorId);
		if (!perActor) {
			perActor = new Map();
			hibernating.set(actorId, perActor);
		}
		meta = perActor.get(hex(requestId));
		if (!meta) {
			// clientMessageIndex: the runner's next outgoing tunnel message index
			// (0 went to ToServerWebSocketOpen).
			meta = {
				gatewayId,
				requestId,
				clientMessageIndex: 1,
				serverMessageIndex: 0,
				path,
				headers,
			};
			perActor.set(hex(requestId), meta);
		}
	}
	ws.addEventListener("message", (event) => {
		ws.send(event.data);
		if (meta) {
			meta.clientMessageIndex += 1;
			if (typeof event.rivetMessageIndex === "number") {
				meta.serverMessageIndex = event.rivetMessageIndex;
				// engine-runner 2.2.1 events carry no gateway id: use the handler's.
				runner.sendHibernatableWebSocketMessageAck(
					gatewayId,
					requestId,
					event.rivetMessageIndex,
				);
			}
		}
	});
	ws.addEventListener("close", () => {
		hibernating.get(actorId)?.delete(hex(requestId));
	});
}

const runner = new Runner({
	logger,
	version: 1,
	endpoint: args.endpoint,
	token: args.token,
	namespace: args.namespace,
	runnerName: args["runner-name"],
	totalSlots: Number.parseInt(args["total-slots"], 10),
	prepopulateActorNames: { echo: { metadata: {} } },
	metadata: {},
	// We handle SIGTERM ourselves: the library's handler never exits the process.
	noAutoShutdown: true,
	onConnected: () => emit({ event: "connected", runner_id: runner.runnerId ?? null }),
	onDisconnected: (code, reason) =>
		emit({ event: "disconnected", code, reason: String(reason) }),
	onShutdown: () => emit({ event: "shutdown" }),
	fetch: handleFetch,
	websocket: handleWebSocket,
	hibernatableWebSocket: { canHibernate: () => HIBERNATE },
	onActorStart: async (actorId, generation, config) => {
		const startMs = Date.now();
		const metas = [...(hibernating.get(actorId)?.values() ?? [])];
		await runner.restoreHibernatingRequests(actorId, metas);
		emit({
			event: "actor_started",
			actor_id: actorId,
			generation,
			name: config.name,
			key: config.key,
			start_ms: startMs,
		});
	},
	onActorStop: async (actorId, generation) => {
		emit({ event: "actor_stopped", actor_id: actorId, generation });
	},
});

let stopping = false;
async function stop(signal) {
	if (stopping) return;
	stopping = true;
	process.stderr.write(`ts_runner: ${signal}, shutting down\n`);
	const timer = setTimeout(() => {
		process.stderr.write("ts_runner: shutdown took over 15 s, exiting\n");
		process.exit(1);
	}, 15_000);
	try {
		await runner.shutdown(false, false);
	} catch (err) {
		process.stderr.write(`ts_runner: shutdown error: ${err?.stack ?? err}\n`);
	}
	clearTimeout(timer);
	process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));

await runner.start();

#!/usr/bin/env node
// Benchmark of the REFERENCE TypeScript runner-protocol codec
// (@rivetkit/engine-runner-protocol, pinned in package.json) on four fixed v7 messages.
//
//   cd bench/node && npm ci && node --expose-gc codec_bench.mjs [--seconds-per-case 1.0] [--batch-ms 10]
//
// Prints exactly one JSON object on stdout:
//   {"package": ..., "node": ..., "cases": {"<case>": {"bytes", "sha256", "encode_us", "decode_us"}}}
// encode_us / decode_us are the median over timed batches (each >= --batch-ms) of the batch's
// microseconds per message; with --expose-gc, garbage is collected before each measurement.
// The message contents are fixed so that the Python benchmark can build byte-identical
// frames (compare the sha256).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

// bare-ts enables extra assertions when NODE_ENV=development; measure the normal
// (production) code path regardless of the caller's environment.
process.env.NODE_ENV = "production";
const proto = await import("@rivetkit/engine-runner-protocol");

const PKG_NAME = "@rivetkit/engine-runner-protocol";
const installed = JSON.parse(
  readFileSync(new URL(`./node_modules/${PKG_NAME}/package.json`, import.meta.url), "utf8"),
);
const PACKAGE = `${PKG_NAME}@${installed.version}`;

// ---------------------------------------------------------------------------------------
// CLI

function parseArgs(argv) {
  const opts = { secondsPerCase: 1.0, batchMs: 10 };
  const names = { "--seconds-per-case": "secondsPerCase", "--batch-ms": "batchMs" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
      process.stderr.write("usage: node codec_bench.mjs [--seconds-per-case S] [--batch-ms MS]\n");
      process.exit(0);
    }
    const [flag, inline] = a.includes("=") ? a.split("=", 2) : [a, undefined];
    const name = names[flag];
    if (name === undefined) {
      process.stderr.write(`codec_bench: unknown argument ${a}\n`);
      process.exit(2);
    }
    const val = Number(inline ?? argv[++i]);
    if (!Number.isFinite(val) || val <= 0) {
      process.stderr.write(`codec_bench: ${flag} must be a positive number\n`);
      process.exit(2);
    }
    opts[name] = val;
  }
  return opts;
}

// ---------------------------------------------------------------------------------------
// Messages

const ascii = (s) => new TextEncoder().encode(s).buffer;
const pattern = (n, f) => Uint8Array.from({ length: n }, (_, j) => f(j) & 0xff).buffer;
const key = (i) => ascii(`key-${String(i).padStart(12, "0")}`); // 16 bytes
const kvMeta = (i) => ({ version: ascii("2.3.11"), updateTs: 1700000000000n + BigInt(i) });
const range = (n) => Array.from({ length: n }, (_, i) => i);

function buildCases() {
  const small = {
    tag: "ToServerTunnelMessage",
    val: {
      messageId: {
        gatewayId: Uint8Array.of(1, 2, 3, 4).buffer,
        requestId: Uint8Array.of(5, 6, 7, 8).buffer,
        messageIndex: 1,
      },
      messageKind: {
        tag: "ToServerWebSocketMessage",
        val: { data: pattern(64, (j) => j % 256), binary: true },
      },
    },
  };

  const kvResponse = (requestId, tag, keys, values, metadata) => ({
    tag: "ToClientKvResponse",
    val: { requestId, data: { tag, val: { keys, values, metadata } } },
  });

  const medium = kvResponse(
    1,
    "KvGetResponse",
    range(100).map(key),
    range(100).map((i) => pattern(100, (j) => (i + j) % 256)),
    range(100).map(kvMeta),
  );

  // The medium message with lengths that differ from entry to entry (keys of 4 to 5 bytes,
  // values of 50 to 149 bytes, two metadata versions): no list has a uniform layout.
  const mediumMixed = kvResponse(
    1,
    "KvGetResponse",
    range(100).map((i) => ascii(`key${i}`)),
    range(100).map((i) => pattern(50 + ((i * 37) % 100), (j) => (i + j) % 256)),
    range(100).map((i) => ({
      version: ascii(i % 2 ? "2.3.9" : "2.3.11"),
      updateTs: 1700000000000n + BigInt(i),
    })),
  );

  const bulk = kvResponse(
    2,
    "KvListResponse",
    range(256).map(key),
    range(256).map((i) => pattern(4096, (j) => (i * 7 + j) % 256)),
    range(256).map(kvMeta),
  );

  const init = {
    tag: "ToServerInit",
    val: {
      name: "bench-runner",
      version: 1,
      totalSlots: 1000,
      prepopulateActorNames: new Map(
        range(20).map((i) => [
          `actor-${String(i).padStart(2, "0")}`,
          {
            metadata: `{"preloadMaxSqliteBytes":1048576,"preloadMaxWorkflowBytes":131072,"index":${i}}`,
          },
        ]),
      ),
      metadata: `{"runner":"bench"}`,
    },
  };

  return [
    ["small", small, proto.encodeToServer, proto.decodeToServer],
    ["medium", medium, proto.encodeToClient, proto.decodeToClient],
    ["mixed", mediumMixed, proto.encodeToClient, proto.decodeToClient],
    ["bulk", bulk, proto.encodeToClient, proto.decodeToClient],
    ["init", init, proto.encodeToServer, proto.decodeToServer],
  ];
}

// ---------------------------------------------------------------------------------------
// Timing

let sink = 0; // consumed results, so the work cannot be optimized away

const nowNs = () => process.hrtime.bigint();

/** Runs fn n times; returns elapsed nanoseconds. */
function runBatch(fn, n) {
  const t0 = nowNs();
  for (let i = 0; i < n; i++) sink += fn();
  return Number(nowNs() - t0);
}

/**
 * Median microseconds per call of fn: the median over batches of each batch's mean, batches
 * of at least `batchMs` (so garbage collection, which the decoder's allocations cause, is
 * paid inside the batches that cause it, as Python pays for freeing its results), after a
 * warm-up of a quarter of the budget. The same procedure as bench/codec.py's `measure`.
 */
function measure(fn, seconds, batchMs) {
  const budgetNs = seconds * 1e9;
  const targetBatchNs = Math.min(batchMs * 1e6, budgetNs / 20);
  let n = 1;
  while (n < 1 << 24) {
    if (runBatch(fn, n) >= targetBatchNs) break;
    n *= 2;
  }
  // Warm-up: a quarter of the budget (JIT tiers, buffer caches).
  const warmEnd = nowNs() + BigInt(Math.round(budgetNs / 4));
  while (nowNs() < warmEnd) runBatch(fn, n);

  const samples = [];
  const end = nowNs() + BigInt(Math.round(budgetNs));
  do {
    samples.push(runBatch(fn, n) / n / 1000);
  } while (nowNs() < end || samples.length < 5);
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  return samples.length % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
}

/** Collects garbage left by the previous case when node runs with --expose-gc. */
const collect = () => globalThis.gc?.();

const round3 = (x) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------------------

const { secondsPerCase, batchMs } = parseArgs(process.argv.slice(2));
const cases = {};
for (const [name, value, encode, decode] of buildCases()) {
  const encoded = Uint8Array.from(encode(value)); // exact-length copy of the frame
  const sha256 = createHash("sha256").update(encoded).digest("hex");

  // Decode input: a fresh, standalone Uint8Array (not a pooled Node Buffer).
  const input = new Uint8Array(encoded.length);
  input.set(encoded);

  // Sanity: the reference decoder round-trips to the same bytes.
  const again = Uint8Array.from(encode(decode(input)));
  if (createHash("sha256").update(again).digest("hex") !== sha256) {
    throw new Error(`codec_bench: ${name} does not round-trip`);
  }

  collect();
  const encodeUs = measure(() => encode(value).length, secondsPerCase, batchMs);
  collect();
  const decodeUs = measure(() => decode(input).tag.length, secondsPerCase, batchMs);
  cases[name] = {
    bytes: encoded.length,
    sha256,
    encode_us: round3(encodeUs),
    decode_us: round3(decodeUs),
  };
}
if (sink < 0) process.stderr.write("unreachable\n");

process.stdout.write(
  `${JSON.stringify({ package: PACKAGE, node: process.version, batch_ms: batchMs, cases })}\n`,
);

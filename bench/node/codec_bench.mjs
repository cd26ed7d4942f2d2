#!/usr/bin/env node
// Benchmark of the REFERENCE TypeScript runner-protocol codec
// (@rivetkit/engine-runner-protocol, pinned in package.json) on four fixed v7 messages.
//
//   cd bench/node && npm ci && node codec_bench.mjs [--seconds-per-case 1.0]
//
// Prints exactly one JSON object on stdout:
//   {"package": ..., "node": ..., "cases": {"<case>": {"bytes", "sha256", "encode_us", "decode_us"}}}
// encode_us / decode_us are the median microseconds per message over timed batches.
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
  let secondsPerCase = 1.0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let val;
    if (a === "--seconds-per-case") val = argv[++i];
    else if (a.startsWith("--seconds-per-case=")) val = a.slice("--seconds-per-case=".length);
    else if (a === "-h" || a === "--help") {
      process.stderr.write("usage: node codec_bench.mjs [--seconds-per-case SECONDS]\n");
      process.exit(0);
    } else {
      process.stderr.write(`codec_bench: unknown argument ${a}\n`);
      process.exit(2);
    }
    secondsPerCase = Number(val);
    if (!Number.isFinite(secondsPerCase) || secondsPerCase <= 0) {
      process.stderr.write(`codec_bench: --seconds-per-case must be a positive number\n`);
      process.exit(2);
    }
  }
  return { secondsPerCase };
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

  const medium = {
    tag: "ToClientKvResponse",
    val: {
      requestId: 1,
      data: {
        tag: "KvGetResponse",
        val: {
          keys: range(100).map(key),
          values: range(100).map((i) => pattern(100, (j) => (i + j) % 256)),
          metadata: range(100).map(kvMeta),
        },
      },
    },
  };

  const bulk = {
    tag: "ToClientKvResponse",
    val: {
      requestId: 2,
      data: {
        tag: "KvListResponse",
        val: {
          keys: range(256).map(key),
          values: range(256).map((i) => pattern(4096, (j) => (i * 7 + j) % 256)),
          metadata: range(256).map(kvMeta),
        },
      },
    },
  };

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

/** Median microseconds per call of fn over batches filling `seconds`. */
function measure(fn, seconds) {
  const budgetNs = seconds * 1e9;
  // Batch size: the smallest power of two taking >= ~1 ms (or 1/50 of the budget when
  // the budget is tiny), so timer resolution does not matter and there are many batches.
  const targetBatchNs = Math.min(1e6, budgetNs / 50);
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

const round3 = (x) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------------------

const { secondsPerCase } = parseArgs(process.argv.slice(2));
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

  const encodeUs = measure(() => encode(value).length, secondsPerCase);
  const decodeUs = measure(() => (decode(input).tag.length), secondsPerCase);
  cases[name] = {
    bytes: encoded.length,
    sha256,
    encode_us: round3(encodeUs),
    decode_us: round3(decodeUs),
  };
}
if (sink < 0) process.stderr.write("unreachable\n");

process.stdout.write(
  `${JSON.stringify({ package: PACKAGE, node: process.version, cases })}\n`,
);

#!/usr/bin/env node
// Golden vector generator for the Rivet runner protocol, version 7.
//
// Encodes hand-written values with the REFERENCE TypeScript codec
// (@rivetkit/engine-runner-protocol, pinned in package.json) and writes
// tests/vectors/v7.json: for every vector the value in rivetpy's JSON mapping and the
// lowercase hex of the reference encoding.
//
//   cd tests/vectors && npm ci && node generate_v7.mjs
//
// The output is deterministic (no randomness, no clock). Every vector is also decoded
// again with the reference decoder and re-encoded; both the bytes and the JSON mapping
// of the decoded value must match. The worked byte examples of the wire spec (§8.1,
// §8.2, §8.5 and the v7 form of §8.3) are asserted byte for byte.
//
// JSON mapping (see the type walker below): struct -> object with the schema's field
// names in declaration order; data / data[4] -> lowercase hex; every integer -> exact
// JSON integer; optional -> null or value; list -> array; map<str><T> -> object in
// insertion order; union -> {"tag": MemberName, "val": ...} (null for void members);
// enum -> the member name from the schema ("OK"/"ERROR").
//
// The conversion is driven by the .bare schema in schemas/runner-protocol/v7.bare, and is
// strict: struct objects must have exactly the schema's fields, integers must be in
// range, data[4] must be 4 bytes, union tags must be members, etc.

import { readFileSync, writeFileSync } from "node:fs";

// Turn on bare-ts's own range assertions (it reads NODE_ENV when first imported), so
// that an out-of-range value in this file fails instead of being silently truncated.
process.env.NODE_ENV = "development";
const proto = await import("@rivetkit/engine-runner-protocol");

const PACKAGE = "@rivetkit/engine-runner-protocol@2.3.10";
const SCHEMA_URL = new URL("../../schemas/runner-protocol/v7.bare", import.meta.url);
// Output path: the first argument, or v7.json beside this script.
const OUT_URL = process.argv[2] ? new URL(`file://${process.argv[2]}`) : new URL("./v7.json", import.meta.url);

{
  const pkg = JSON.parse(
    readFileSync(
      new URL("./node_modules/@rivetkit/engine-runner-protocol/package.json", import.meta.url),
      "utf8",
    ),
  );
  if (`${pkg.name}@${pkg.version}` !== PACKAGE) {
    fail(`installed ${pkg.name}@${pkg.version}, expected ${PACKAGE} (run npm ci)`);
  }
}

function fail(msg) {
  throw new Error(`generate_v7: ${msg}`);
}

// ---------------------------------------------------------------------------------------
// Minimal BARE schema parser (enough for v7.bare).

function parseSchema(text) {
  const src = text.replace(/#[^\n]*/g, "");
  const tokens = [];
  const re = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d+)|([{}<>\[\]|:]))/y;
  let pos = 0;
  while (true) {
    const rest = src.slice(pos);
    if (rest.trim() === "") break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) fail(`schema: unexpected character near ${JSON.stringify(src.slice(pos, pos + 20))}`);
    tokens.push(m[1] ?? m[2] ?? m[3]);
    pos = re.lastIndex;
  }
  let i = 0;
  const peek = () => tokens[i];
  const next = () => {
    if (i >= tokens.length) fail("schema: unexpected end");
    return tokens[i++];
  };
  const expect = (t) => {
    const got = next();
    if (got !== t) fail(`schema: expected ${t}, got ${got}`);
  };
  const PRIMS = new Set(["u8", "u16", "u32", "u64", "i64", "bool", "str", "data", "void"]);
  function parseType() {
    const t = next();
    if (t === "optional" || t === "list") {
      expect("<");
      const of = parseType();
      expect(">");
      return { kind: t, of };
    }
    if (t === "map") {
      expect("<");
      const key = parseType();
      expect(">");
      expect("<");
      const val = parseType();
      expect(">");
      if (!(key.kind === "prim" && key.name === "str")) fail("schema: only map<str><T> supported");
      return { kind: "map", key, val };
    }
    if (t === "data" && peek() === "[") {
      next();
      const len = Number(next());
      expect("]");
      return { kind: "fixeddata", len };
    }
    if (t === "struct") {
      expect("{");
      const fields = [];
      while (peek() !== "}") {
        const name = next();
        expect(":");
        fields.push({ name, type: parseType() });
      }
      expect("}");
      return { kind: "struct", fields };
    }
    if (t === "union") {
      expect("{");
      const members = [];
      if (peek() === "|") next();
      while (peek() !== "}") {
        members.push(next());
        if (peek() === "|") next();
      }
      expect("}");
      return { kind: "union", members };
    }
    if (t === "enum") {
      expect("{");
      const values = [];
      while (peek() !== "}") values.push(next());
      expect("}");
      return { kind: "enum", values };
    }
    if (PRIMS.has(t)) return { kind: "prim", name: t };
    if (/^[A-Z]/.test(t)) return { kind: "ref", name: t };
    fail(`schema: unknown type ${t}`);
  }
  const types = new Map();
  while (i < tokens.length) {
    expect("type");
    const name = next();
    if (types.has(name)) fail(`schema: duplicate type ${name}`);
    types.set(name, parseType());
  }
  for (const [name, t] of types) {
    if (t.kind === "union") {
      for (const m of t.members) if (!types.has(m)) fail(`schema: ${name} member ${m} undefined`);
    }
  }
  return types;
}

const SCHEMA = parseSchema(readFileSync(SCHEMA_URL, "utf8"));

// ---------------------------------------------------------------------------------------
// JSON model: plain arrays, strings, booleans, null, numbers (safe integers), bigints and
// JObj (an ordered list of entries; used for structs, maps and unions so that key order
// is exactly insertion order, even for integer-like keys).

class JObj {
  constructor(entries) {
    this.entries = entries;
  }
}

function dumpCompact(v) {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) fail(`non-integer / unsafe number ${v} in JSON`);
    return String(v);
  }
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(dumpCompact).join(", ")}]`;
  if (v instanceof JObj) {
    return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}: ${dumpCompact(x)}`).join(", ")}}`;
  }
  fail(`cannot serialize ${typeof v}`);
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
function toHex(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const b of u8) s += HEX[b];
  return s;
}

function asBytes(x, what) {
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (x instanceof Uint8Array) return x;
  fail(`${what}: expected ArrayBuffer, got ${Object.prototype.toString.call(x)}`);
}

const INT_RANGES = {
  u8: [0n, 0xffn],
  u16: [0n, 0xffffn],
  u32: [0n, 0xffffffffn],
  u64: [0n, 2n ** 64n - 1n],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

// TS enum member names are the schema's UPPER_SNAKE names in PascalCase ("OK" -> "Ok").
function tsEnumName(schemaName) {
  return schemaName
    .split("_")
    .map((p) => p.charAt(0) + p.slice(1).toLowerCase())
    .join("");
}

// Convert a TS codec value of schema type `t` to our JSON model.
function toJson(t, x, path) {
  switch (t.kind) {
    case "ref": {
      const def = SCHEMA.get(t.name);
      if (!def) fail(`${path}: unknown type ${t.name}`);
      return toJson(def, x, `${path}<${t.name}>`);
    }
    case "prim":
      switch (t.name) {
        case "void":
          if (x !== null) fail(`${path}: void must be null`);
          return null;
        case "bool":
          if (typeof x !== "boolean") fail(`${path}: expected boolean`);
          return x;
        case "str":
          if (typeof x !== "string") fail(`${path}: expected string`);
          if (!x.isWellFormed()) fail(`${path}: lone surrogate in string`);
          return x;
        case "data":
          return toHex(asBytes(x, path));
        case "u8":
        case "u16":
        case "u32": {
          if (typeof x !== "number" || !Number.isInteger(x)) fail(`${path}: expected integer number`);
          const [lo, hi] = INT_RANGES[t.name];
          if (BigInt(x) < lo || BigInt(x) > hi) fail(`${path}: ${x} out of ${t.name} range`);
          return x;
        }
        case "u64":
        case "i64": {
          if (typeof x !== "bigint") fail(`${path}: expected bigint`);
          const [lo, hi] = INT_RANGES[t.name];
          if (x < lo || x > hi) fail(`${path}: ${x} out of ${t.name} range`);
          return x;
        }
      }
      fail(`${path}: unhandled primitive ${t.name}`);
    case "fixeddata": {
      const b = asBytes(x, path);
      if (b.length !== t.len) fail(`${path}: data[${t.len}] has ${b.length} bytes`);
      return toHex(b);
    }
    case "optional":
      return x === null ? null : toJson(t.of, x, `${path}?`);
    case "list":
      if (!Array.isArray(x)) fail(`${path}: expected array`);
      return x.map((e, i) => toJson(t.of, e, `${path}[${i}]`));
    case "map":
      if (!(x instanceof Map)) fail(`${path}: expected Map`);
      return new JObj(
        [...x].map(([k, v]) => [toJson(t.key, k, `${path}.key`), toJson(t.val, v, `${path}[${k}]`)]),
      );
    case "struct": {
      if (x === null || typeof x !== "object" || Array.isArray(x)) fail(`${path}: expected object`);
      const want = t.fields.map((f) => f.name);
      const have = Object.keys(x);
      if ([...want].sort().join() !== [...have].sort().join()) {
        fail(`${path}: fields ${JSON.stringify(have)} != schema ${JSON.stringify(want)}`);
      }
      return new JObj(t.fields.map((f) => [f.name, toJson(f.type, x[f.name], `${path}.${f.name}`)]));
    }
    case "union": {
      if (x === null || typeof x !== "object") fail(`${path}: expected {tag, val}`);
      const keys = Object.keys(x).sort().join();
      if (keys !== "tag,val") fail(`${path}: union object keys ${keys}`);
      if (!t.members.includes(x.tag)) fail(`${path}: ${x.tag} is not a member`);
      return new JObj([
        ["tag", x.tag],
        ["val", toJson({ kind: "ref", name: x.tag }, x.val, `${path}.${x.tag}`)],
      ]);
    }
    case "enum": {
      const found = t.values.find((v) => tsEnumName(v) === x);
      if (found === undefined) fail(`${path}: ${JSON.stringify(x)} is not an enum value`);
      return found;
    }
  }
  fail(`${path}: unhandled kind ${t.kind}`);
}

// ---------------------------------------------------------------------------------------
// Codec per top-level type.

const CODECS = {
  ToClient: [proto.encodeToClient, proto.decodeToClient],
  ToServer: [proto.encodeToServer, proto.decodeToServer],
  ToRunner: [proto.encodeToRunner, proto.decodeToRunner],
  ToGateway: [proto.encodeToGateway, proto.decodeToGateway],
  ToServerlessServer: [proto.encodeToServerlessServer, proto.decodeToServerlessServer],
  ActorCommandKeyData: [proto.encodeActorCommandKeyData, proto.decodeActorCommandKeyData],
};
for (const [name, [enc, dec]] of Object.entries(CODECS)) {
  if (typeof enc !== "function" || typeof dec !== "function") fail(`missing codec for ${name}`);
  if (!SCHEMA.has(name)) fail(`schema lacks top-level type ${name}`);
}
if (proto.StopCode.Ok !== tsEnumName("OK") || proto.StopCode.Error !== tsEnumName("ERROR")) {
  fail("unexpected StopCode enum values in the TS package");
}

const vectors = [];
const names = new Set();

function vec(type, name, value) {
  if (names.has(name)) fail(`duplicate vector name ${name}`);
  names.add(name);
  const [encode, decode] = CODECS[type];
  const t = { kind: "ref", name: type };
  const json = toJson(t, value, type);
  const jsonText = dumpCompact(json);
  const bytes = Uint8Array.from(encode(value)); // copy out of the codec's buffer
  const hex = toHex(bytes);

  // Sanity: decode with the reference decoder, re-encode, compare bytes and JSON.
  const decoded = decode(Uint8Array.from(bytes));
  const again = toHex(encode(decoded));
  if (again !== hex) fail(`${name}: re-encoding differs\n  ${hex}\n  ${again}`);
  const decodedJson = dumpCompact(toJson(t, decoded, type));
  if (decodedJson !== jsonText) fail(`${name}: decoded JSON differs\n  ${jsonText}\n  ${decodedJson}`);

  vectors.push({ type, name, json, jsonText, hex });
}

// ---------------------------------------------------------------------------------------
// Value helpers.

const ID = "5jxlv5boumuljx2d2nvyat0o2edl00";
const TS = 1700000000000n;
const U16_MAX = 65535;
const U32_MAX = 4294967295;
const U64_MAX = 18446744073709551615n;
const I64_MAX = 9223372036854775807n;
const I64_MIN = -9223372036854775808n;

const enc = new TextEncoder();
/** ArrayBuffer from byte values. */
const b = (...xs) => Uint8Array.from(xs).buffer;
/** ArrayBuffer from a hex string. */
const h = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (x) => parseInt(x, 16)).buffer;
/** ArrayBuffer of UTF-8 text. */
const u = (s) => enc.encode(s).buffer;
/** ArrayBuffer of n bytes, byte j = f(j) & 0xff. */
const pat = (n, f = (j) => j) => Uint8Array.from({ length: n }, (_, j) => f(j) & 0xff).buffer;
const range = (n) => Array.from({ length: n }, (_, i) => i);
const pad = (i, w) => String(i).padStart(w, "0");

const U = (tag, val = null) => ({ tag, val });
const cp = (actorId, generation, index) => ({ actorId, generation, index });
const meta = (version, updateTs) => ({ version: u(version), updateTs });
const mid = (gatewayId, requestId, messageIndex) => ({ gatewayId, requestId, messageIndex });
const MID = mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 0);
const config = (name, key, createTs, input) => ({ name, key, createTs, input });
const start = (cfg, hibernatingRequests = []) => U("CommandStartActor", { config: cfg, hibernatingRequests });
const hib = (g, r) => ({ gatewayId: g, requestId: r });
const stopped = (code, message) => U("ActorStateStopped", { code, message });
const OK = proto.StopCode.Ok;
const ERR = proto.StopCode.Error;
const evw = (checkpoint, inner) => ({ checkpoint, inner });
const cmdw = (checkpoint, inner) => ({ checkpoint, inner });
const headers = (...pairs) => new Map(pairs);

// ---------------------------------------------------------------------------------------
// ToServer

const initV = (name, version, totalSlots, prepopulateActorNames, metadata) =>
  U("ToServerInit", { name, version, totalSlots, prepopulateActorNames, metadata });

vec("ToServer", "init minimal (empty name, zeros, absent optionals)", initV("", 0, 0, null, null));
vec(
  "ToServer",
  "spec 8.5 init default",
  initV("default", 1, 100, new Map([["counter", { metadata: "{}" }]]), null),
);
vec("ToServer", "init empty actor-name map, metadata present", initV("r", 1, 1, new Map(), "{}"));
vec("ToServer", "init u32 max version and slots", initV("max", U32_MAX, U32_MAX, null, '{"a":1}'));
vec(
  "ToServer",
  "init utf8 names and metadata",
  initV(
    "раннер 🚀",
    7,
    42,
    new Map([
      ["ключ", { metadata: '{"имя":"значение"}' }],
      ["🚀 actor", { metadata: "{}" }],
      ["日本語", { metadata: "" }],
    ]),
    '{"region":"日本語"}',
  ),
);
vec(
  "ToServer",
  "init actor-name map insertion order (integer-like keys)",
  initV(
    "order",
    2,
    3,
    new Map([
      ["zeta", { metadata: "{}" }],
      ["10", { metadata: "{}" }],
      ["2", { metadata: "{}" }],
      ["alpha", { metadata: "{}" }],
    ]),
    null,
  ),
);
vec(
  "ToServer",
  "init big prepopulateActorNames (150 entries)",
  initV(
    "big-runner",
    3,
    5000,
    new Map(
      range(150).map((i) => [
        `actor-${pad(i, 3)}`,
        { metadata: `{"preloadMaxSqliteBytes":1048576,"preloadMaxWorkflowBytes":131072,"index":${i}}` },
      ]),
    ),
    '{"runner":"golden","labels":["a","b"]}',
  ),
);
vec(
  "ToServer",
  "init metadata 300 chars",
  initV("long", 1, 10, null, `{"pad":"${"x".repeat(290)}"}`),
);

vec("ToServer", "events empty", U("ToServerEvents", []));
vec(
  "ToServer",
  "spec 8.5 events stopped error",
  U("ToServerEvents", [evw(cp("a", 1, 0n), U("EventActorStateUpdate", { state: stopped(ERR, null) }))]),
);
vec(
  "ToServer",
  "events intent sleep",
  U("ToServerEvents", [evw(cp(ID, 1, 0n), U("EventActorIntent", { intent: U("ActorIntentSleep") }))]),
);
vec(
  "ToServer",
  "events intent stop",
  U("ToServerEvents", [evw(cp(ID, 2, 5n), U("EventActorIntent", { intent: U("ActorIntentStop") }))]),
);
vec(
  "ToServer",
  "events state running",
  U("ToServerEvents", [evw(cp(ID, 1, 1n), U("EventActorStateUpdate", { state: U("ActorStateRunning") }))]),
);
vec(
  "ToServer",
  "events state stopped ok with message",
  U("ToServerEvents", [
    evw(cp(ID, 1, 2n), U("EventActorStateUpdate", { state: stopped(OK, "graceful shutdown") })),
  ]),
);
vec(
  "ToServer",
  "events state stopped ok absent message",
  U("ToServerEvents", [evw(cp(ID, 1, 3n), U("EventActorStateUpdate", { state: stopped(OK, null) }))]),
);
vec(
  "ToServer",
  "events state stopped error empty message",
  U("ToServerEvents", [evw(cp(ID, 1, 4n), U("EventActorStateUpdate", { state: stopped(ERR, "") }))]),
);
vec(
  "ToServer",
  "events state stopped error utf8 message",
  U("ToServerEvents", [
    evw(cp(ID, 9, 4n), U("EventActorStateUpdate", { state: stopped(ERR, "ошибка: 🚀 упал, 日本語") })),
  ]),
);
vec(
  "ToServer",
  "events set alarm absent",
  U("ToServerEvents", [evw(cp(ID, 1, 6n), U("EventActorSetAlarm", { alarmTs: null }))]),
);
vec(
  "ToServer",
  "events set alarm ts",
  U("ToServerEvents", [evw(cp(ID, 1, 7n), U("EventActorSetAlarm", { alarmTs: TS + 60000n }))]),
);
vec(
  "ToServer",
  "events set alarm zero",
  U("ToServerEvents", [evw(cp(ID, 1, 8n), U("EventActorSetAlarm", { alarmTs: 0n }))]),
);
vec(
  "ToServer",
  "events set alarm i64 max",
  U("ToServerEvents", [evw(cp(ID, 1, 9n), U("EventActorSetAlarm", { alarmTs: I64_MAX }))]),
);
vec(
  "ToServer",
  "events set alarm i64 min",
  U("ToServerEvents", [evw(cp(ID, 1, 10n), U("EventActorSetAlarm", { alarmTs: I64_MIN }))]),
);
vec(
  "ToServer",
  "events set alarm minus one",
  U("ToServerEvents", [evw(cp(ID, 1, 11n), U("EventActorSetAlarm", { alarmTs: -1n }))]),
);
vec(
  "ToServer",
  "events checkpoint extremes (u32 max generation, i64 max index)",
  U("ToServerEvents", [
    evw(cp(ID, U32_MAX, I64_MAX), U("EventActorIntent", { intent: U("ActorIntentSleep") })),
    evw(cp("", 0, I64_MIN), U("EventActorIntent", { intent: U("ActorIntentStop") })),
  ]),
);
vec(
  "ToServer",
  "events mixed batch",
  U("ToServerEvents", [
    evw(cp(ID, 1, 0n), U("EventActorStateUpdate", { state: U("ActorStateRunning") })),
    evw(cp(ID, 1, 1n), U("EventActorSetAlarm", { alarmTs: TS })),
    evw(cp(ID, 1, 2n), U("EventActorIntent", { intent: U("ActorIntentSleep") })),
    evw(cp(ID, 1, 3n), U("EventActorStateUpdate", { state: stopped(OK, null) })),
    evw(cp("🚀 actor", 3, 0n), U("EventActorStateUpdate", { state: stopped(ERR, "crash") })),
  ]),
);
vec(
  "ToServer",
  "events 130 entries",
  U(
    "ToServerEvents",
    range(130).map((i) =>
      evw(
        cp(`actor-${pad(i, 3)}`, i, BigInt(i) * 1000n),
        i % 3 === 0
          ? U("EventActorStateUpdate", { state: U("ActorStateRunning") })
          : i % 3 === 1
            ? U("EventActorSetAlarm", { alarmTs: TS + BigInt(i) })
            : U("EventActorIntent", { intent: U("ActorIntentStop") }),
      ),
    ),
  ),
);

vec("ToServer", "spec 8.5 ack commands empty", U("ToServerAckCommands", { lastCommandCheckpoints: [] }));
vec("ToServer", "ack commands one", U("ToServerAckCommands", { lastCommandCheckpoints: [cp(ID, 1, 0n)] }));
vec(
  "ToServer",
  "ack commands several",
  U("ToServerAckCommands", {
    lastCommandCheckpoints: [cp(ID, 1, 3n), cp("ключ", 2, 7n), cp("", U32_MAX, I64_MAX), cp("x", 0, -1n)],
  }),
);
vec(
  "ToServer",
  "ack commands 200 checkpoints",
  U("ToServerAckCommands", {
    lastCommandCheckpoints: range(200).map((i) => cp(`a${i}`, i * 3, BigInt(i) - 100n)),
  }),
);

vec("ToServer", "spec 8.5 stopping", U("ToServerStopping"));

vec("ToServer", "spec 8.1 pong", U("ToServerPong", { ts: TS }));
vec("ToServer", "pong zero", U("ToServerPong", { ts: 0n }));
vec("ToServer", "pong i64 max", U("ToServerPong", { ts: I64_MAX }));
vec("ToServer", "pong i64 min", U("ToServerPong", { ts: I64_MIN }));
vec("ToServer", "pong minus one", U("ToServerPong", { ts: -1n }));

const kvReq = (actorId, requestId, data) => U("ToServerKvRequest", { actorId, requestId, data });

vec("ToServer", "spec 8.2 kv get request", kvReq(ID, 7, U("KvGetRequest", { keys: [b(1)] })));
vec("ToServer", "kv get empty keys", kvReq(ID, 0, U("KvGetRequest", { keys: [] })));
vec(
  "ToServer",
  "kv get varint length boundaries (0, 1, 127, 128, 300)",
  kvReq(ID, 1, U("KvGetRequest", { keys: [b(), b(0), pat(127), pat(128), pat(300)] })),
);
vec(
  "ToServer",
  "kv get u32 max request id, utf8 actor id",
  kvReq("ключ 🚀", U32_MAX, U("KvGetRequest", { keys: [u("ключ"), u("日本語")] })),
);
vec("ToServer", "kv get empty actor id", kvReq("", 2, U("KvGetRequest", { keys: [b(0xff)] })));
vec(
  "ToServer",
  "kv get 130 keys",
  kvReq(ID, 3, U("KvGetRequest", { keys: range(130).map((i) => b(1, i)) })),
);

const listReq = (query, reverse, limit) => U("KvListRequest", { query, reverse, limit });
vec("ToServer", "kv list all, absent options", kvReq(ID, 10, listReq(U("KvListAllQuery"), null, null)));
vec("ToServer", "kv list all, reverse true limit 10", kvReq(ID, 11, listReq(U("KvListAllQuery"), true, 10n)));
vec("ToServer", "kv list all, reverse false limit 0", kvReq(ID, 12, listReq(U("KvListAllQuery"), false, 0n)));
vec(
  "ToServer",
  "kv list all, limit u64 max",
  kvReq(ID, 13, listReq(U("KvListAllQuery"), null, U64_MAX)),
);
vec(
  "ToServer",
  "kv list range inclusive",
  kvReq(ID, 14, listReq(U("KvListRangeQuery", { start: b(1), end: b(2), exclusive: false }), null, null)),
);
vec(
  "ToServer",
  "kv list range exclusive reverse limit",
  kvReq(
    ID,
    15,
    listReq(U("KvListRangeQuery", { start: b(1, 0), end: b(1, 0xff), exclusive: true }), true, 100n),
  ),
);
vec(
  "ToServer",
  "kv list range empty bounds",
  kvReq(ID, 16, listReq(U("KvListRangeQuery", { start: b(), end: b(), exclusive: true }), false, null)),
);
vec(
  "ToServer",
  "kv list range 128-byte bounds",
  kvReq(
    ID,
    17,
    listReq(U("KvListRangeQuery", { start: pat(128), end: pat(128, (j) => j + 1), exclusive: false }), null, 2n ** 32n),
  ),
);
vec("ToServer", "kv list prefix", kvReq(ID, 18, listReq(U("KvListPrefixQuery", { key: b(8, 1) }), null, null)));
vec(
  "ToServer",
  "kv list prefix 0xff edge, limit 1",
  kvReq(ID, 19, listReq(U("KvListPrefixQuery", { key: b(0xff, 0xff) }), true, 1n)),
);
vec("ToServer", "kv list prefix empty key", kvReq(ID, 20, listReq(U("KvListPrefixQuery", { key: b() }), null, null)));

vec("ToServer", "kv put empty", kvReq(ID, 30, U("KvPutRequest", { keys: [], values: [] })));
vec("ToServer", "kv put one", kvReq(ID, 31, U("KvPutRequest", { keys: [b(1)], values: [b(0xaa)] })));
vec(
  "ToServer",
  "kv put value length boundaries",
  kvReq(
    ID,
    32,
    U("KvPutRequest", {
      keys: [b(1), b(2), b(3), b(4), u("ключ")],
      values: [b(), pat(127), pat(128), pat(300, (j) => j * 7), u("🚀 значение 日本語")],
    }),
  ),
);
vec(
  "ToServer",
  "kv put 129 entries",
  kvReq(
    ID,
    33,
    U("KvPutRequest", {
      keys: range(129).map((i) => u(`k${pad(i, 3)}`)),
      values: range(129).map((i) => pat(i % 5, (j) => i + j)),
    }),
  ),
);

vec(
  "ToServer",
  "kv put 9 uniform entries, two-byte value lengths",
  kvReq(
    ID,
    34,
    U("KvPutRequest", {
      keys: range(9).map((i) => b(8, 1, i)),
      values: range(9).map((i) => pat(200, (j) => i ^ j)),
    }),
  ),
);

vec("ToServer", "kv delete empty", kvReq(ID, 40, U("KvDeleteRequest", { keys: [] })));
vec("ToServer", "kv delete several", kvReq(ID, 41, U("KvDeleteRequest", { keys: [b(1), b(), pat(128)] })));

vec("ToServer", "kv delete range", kvReq(ID, 50, U("KvDeleteRangeRequest", { start: b(2), end: b(3) })));
vec("ToServer", "kv delete range empty bounds", kvReq(ID, 51, U("KvDeleteRangeRequest", { start: b(), end: b() })));
vec(
  "ToServer",
  "kv delete range long bounds",
  kvReq(ID, 52, U("KvDeleteRangeRequest", { start: pat(300), end: pat(127, () => 0xff) })),
);

vec("ToServer", "kv drop", kvReq(ID, 60, U("KvDropRequest")));
vec("ToServer", "kv drop u32 max request id", kvReq("x", U32_MAX, U("KvDropRequest")));

const stm = (messageId, messageKind) => U("ToServerTunnelMessage", { messageId, messageKind });

vec(
  "ToServer",
  "tunnel response start full",
  stm(
    MID,
    U("ToServerResponseStart", {
      status: 200,
      headers: headers(["content-type", "application/json"], ["x-rivet-actor", ID], ["set-cookie", "a=1"]),
      body: u('{"ok":true}'),
      stream: false,
    }),
  ),
);
vec(
  "ToServer",
  "tunnel response start empty headers absent body stream",
  stm(mid(b(0, 0, 0, 0), b(0, 0, 0, 0), 0), U("ToServerResponseStart", { status: 0, headers: new Map(), body: null, stream: true })),
);
vec(
  "ToServer",
  "tunnel response start u16 max status, empty body",
  stm(
    mid(b(0xff, 0xff, 0xff, 0xff), b(0xff, 0xff, 0xff, 0xff), U16_MAX),
    U("ToServerResponseStart", { status: U16_MAX, headers: headers(["", ""]), body: b(), stream: false }),
  ),
);
vec(
  "ToServer",
  "tunnel response start utf8 headers, 300-byte body",
  stm(
    mid(b(9, 8, 7, 6), b(1, 1, 1, 1), 1),
    U("ToServerResponseStart", {
      status: 404,
      headers: headers(["x-ключ", "значение"], ["x-emoji", "🚀 actor"], ["x-jp", "日本語"]),
      body: pat(300),
      stream: false,
    }),
  ),
);
vec(
  "ToServer",
  "tunnel response start 130 headers",
  stm(
    MID,
    U("ToServerResponseStart", {
      status: 200,
      headers: new Map(range(130).map((i) => [`x-h-${pad(i, 3)}`, `v${i}`])),
      body: null,
      stream: false,
    }),
  ),
);
vec("ToServer", "tunnel response chunk empty final", stm(MID, U("ToServerResponseChunk", { body: b(), finish: true })));
vec(
  "ToServer",
  "tunnel response chunk 128 bytes",
  stm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 2), U("ToServerResponseChunk", { body: pat(128), finish: false })),
);
vec("ToServer", "tunnel response abort", stm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 3), U("ToServerResponseAbort")));
vec("ToServer", "tunnel websocket open hibernatable", stm(MID, U("ToServerWebSocketOpen", { canHibernate: true })));
vec("ToServer", "tunnel websocket open not hibernatable", stm(MID, U("ToServerWebSocketOpen", { canHibernate: false })));
vec(
  "ToServer",
  "tunnel websocket message binary 127",
  stm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 1), U("ToServerWebSocketMessage", { data: pat(127), binary: true })),
);
vec(
  "ToServer",
  "tunnel websocket message text utf8",
  stm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 2), U("ToServerWebSocketMessage", { data: u("привет 🚀 日本語"), binary: false })),
);
vec("ToServer", "tunnel websocket message empty", stm(MID, U("ToServerWebSocketMessage", { data: b(), binary: false })));
vec("ToServer", "tunnel websocket message ack zero", stm(MID, U("ToServerWebSocketMessageAck", { index: 0 })));
vec(
  "ToServer",
  "tunnel websocket message ack u16 max",
  stm(mid(b(0xde, 0xad, 0xbe, 0xef), b(0xca, 0xfe, 0xba, 0xbe), U16_MAX), U("ToServerWebSocketMessageAck", { index: U16_MAX })),
);
vec(
  "ToServer",
  "tunnel websocket close absent",
  stm(MID, U("ToServerWebSocketClose", { code: null, reason: null, hibernate: false })),
);
vec(
  "ToServer",
  "tunnel websocket close normal hibernate",
  stm(MID, U("ToServerWebSocketClose", { code: 1000, reason: "normal closure", hibernate: true })),
);
vec(
  "ToServer",
  "tunnel websocket close u16 max empty reason",
  stm(MID, U("ToServerWebSocketClose", { code: U16_MAX, reason: "", hibernate: false })),
);
vec(
  "ToServer",
  "tunnel websocket close reason only utf8",
  stm(MID, U("ToServerWebSocketClose", { code: null, reason: "закрыто 🚀", hibernate: false })),
);
vec(
  "ToServer",
  "tunnel websocket close code zero",
  stm(MID, U("ToServerWebSocketClose", { code: 0, reason: null, hibernate: true })),
);

// ---------------------------------------------------------------------------------------
// ToClient

const clientInit = (runnerId, runnerLostThreshold, actorStopThreshold, serverlessDrainGracePeriod) =>
  U("ToClientInit", { runnerId, metadata: { runnerLostThreshold, actorStopThreshold, serverlessDrainGracePeriod } });

vec("ToClient", "init defaults, no drain grace", clientInit(ID, 15000n, 30000n, null));
vec("ToClient", "init serverless drain grace", clientInit(ID, 15000n, 30000n, 10000n));
vec("ToClient", "init empty runner id zeros", clientInit("", 0n, 0n, 0n));
vec("ToClient", "init i64 extremes", clientInit("ключ", I64_MAX, I64_MIN, I64_MAX));
vec("ToClient", "init negative thresholds", clientInit("🚀 actor", -1n, -15000n, I64_MIN));

vec("ToClient", "commands empty", U("ToClientCommands", []));
vec(
  "ToClient",
  "spec 8.3 commands start actor (v7 form)",
  U("ToClientCommands", [cmdw(cp(ID, 1, 0n), start(config("counter", "k", TS, null)))]),
);
vec(
  "ToClient",
  "commands start minimal",
  U("ToClientCommands", [cmdw(cp(ID, 0, 0n), start(config("", null, 0n, null)))]),
);
vec(
  "ToClient",
  "commands start with input and hibernating requests",
  U("ToClientCommands", [
    cmdw(
      cp(ID, 2, 1n),
      start(config("chat-room", '["room","42"]', TS, h("a2646e616d656463686174")), [
        hib(b(1, 2, 3, 4), b(5, 6, 7, 8)),
        hib(b(0xff, 0xff, 0xff, 0xff), b(0, 0, 0, 0)),
      ]),
    ),
  ]),
);
vec(
  "ToClient",
  "commands start empty input present",
  U("ToClientCommands", [cmdw(cp(ID, 1, 0n), start(config("a", "", TS, b())))]),
);
vec(
  "ToClient",
  "commands start 300-byte input, utf8 key",
  U("ToClientCommands", [cmdw(cp(ID, 1, 1n), start(config("日本語", "ключ 🚀", I64_MIN, pat(300, (j) => 255 - j))))]),
);
vec(
  "ToClient",
  "commands start 130 hibernating requests",
  U("ToClientCommands", [
    cmdw(
      cp(ID, 4, 9n),
      start(
        config("ws", null, TS, null),
        range(130).map((i) => hib(b(i, 0, 0, 1), b(0, i, 255 - i, 2))),
      ),
    ),
  ]),
);
vec("ToClient", "commands stop", U("ToClientCommands", [cmdw(cp(ID, 1, 1n), U("CommandStopActor"))]));
vec(
  "ToClient",
  "commands stop extremes",
  U("ToClientCommands", [cmdw(cp("", U32_MAX, I64_MAX), U("CommandStopActor"))]),
);
vec(
  "ToClient",
  "commands mixed batch",
  U("ToClientCommands", [
    cmdw(cp(ID, 1, 0n), start(config("counter", "k", TS, b(0xa0)))),
    cmdw(cp(ID, 1, 1n), U("CommandStopActor")),
    cmdw(cp("other", 7, 0n), start(config("counter", null, TS + 1n, null), [hib(b(1, 1, 1, 1), b(2, 2, 2, 2))])),
  ]),
);
vec(
  "ToClient",
  "commands 128 stops",
  U("ToClientCommands", range(128).map((i) => cmdw(cp(`actor-${pad(i, 3)}`, 1, BigInt(i)), U("CommandStopActor")))),
);

vec("ToClient", "ack events empty", U("ToClientAckEvents", { lastEventCheckpoints: [] }));
vec("ToClient", "ack events one", U("ToClientAckEvents", { lastEventCheckpoints: [cp(ID, 1, 12n)] }));
vec(
  "ToClient",
  "ack events several",
  U("ToClientAckEvents", {
    lastEventCheckpoints: [cp(ID, 1, 12n), cp("日本語", U32_MAX, I64_MIN), cp("", 0, 0n)],
  }),
);
vec(
  "ToClient",
  "ack events 140 checkpoints",
  U("ToClientAckEvents", { lastEventCheckpoints: range(140).map((i) => cp(`a${i}`, 1, BigInt(i))) }),
);

const kvResp = (requestId, data) => U("ToClientKvResponse", { requestId, data });

vec(
  "ToClient",
  "spec 8.2 kv get response",
  kvResp(7, U("KvGetResponse", { keys: [b(1)], values: [b(0xaa)], metadata: [meta("2.1.7", TS)] })),
);
vec("ToClient", "kv error response", kvResp(1, U("KvErrorResponse", { message: "actor does not exist" })));
vec("ToClient", "kv error response empty message", kvResp(0, U("KvErrorResponse", { message: "" })));
vec(
  "ToClient",
  "kv error response utf8, u32 max request id",
  kvResp(U32_MAX, U("KvErrorResponse", { message: "ключ слишком большой 🚀 日本語" })),
);
vec("ToClient", "kv get response empty", kvResp(2, U("KvGetResponse", { keys: [], values: [], metadata: [] })));
vec(
  "ToClient",
  "kv get response varint boundaries",
  kvResp(
    3,
    U("KvGetResponse", {
      keys: [b(), pat(127), pat(128)],
      values: [pat(300), b(), pat(128, (j) => 3 * j)],
      metadata: [
        { version: b(), updateTs: 0n },
        meta("2.3.10", I64_MAX),
        { version: pat(128), updateTs: I64_MIN },
      ],
    }),
  ),
);
vec("ToClient", "kv list response empty", kvResp(4, U("KvListResponse", { keys: [], values: [], metadata: [] })));
vec(
  "ToClient",
  "kv list response few",
  kvResp(
    5,
    U("KvListResponse", {
      keys: [b(8, 1, 1), b(8, 1, 2)],
      values: [u("ключ"), u("🚀 actor")],
      metadata: [meta("2.1.7", TS), meta("2.1.8", TS + 1n)],
    }),
  ),
);
vec(
  "ToClient",
  "kv list response 130 entries",
  kvResp(
    6,
    U("KvListResponse", {
      keys: range(130).map((i) => u(`key-${pad(i, 4)}`)),
      values: range(130).map((i) => pat(i, (j) => i + j)),
      metadata: range(130).map((i) => meta("2.3.10", TS + BigInt(i))),
    }),
  ),
);
// Lists whose elements all share one layout (rivetpy decodes those in one pass), around the
// edges of that pass: more than one 256-element chunk, two-byte length prefixes, one element
// that breaks the pattern at the end, in the middle, or in a later field of the element.
vec(
  "ToClient",
  "kv get response 260 uniform entries",
  kvResp(
    11,
    U("KvGetResponse", {
      keys: range(260).map((i) => b(8, 1, i >> 8, i & 0xff)),
      values: range(260).map((i) => b(i & 0xff)),
      metadata: range(260).map((i) => meta("2.3.11", TS + BigInt(i))),
    }),
  ),
);
vec(
  "ToClient",
  "kv get response uniform but the last entry",
  kvResp(
    12,
    U("KvGetResponse", {
      keys: range(12).map((i) => u(i === 11 ? "key-longer" : `key-${pad(i, 2)}`)),
      values: range(12).map((i) => pat(i === 11 ? 129 : 128, (j) => i * j)),
      metadata: range(12).map((i) => meta(i === 11 ? "2.3.9" : "2.3.11", TS - BigInt(i))),
    }),
  ),
);
vec(
  "ToClient",
  "kv list response uniform but one metadata version in the middle",
  kvResp(
    13,
    U("KvListResponse", {
      keys: range(9).map((i) => b(8, 1, i)),
      values: range(9).map(() => b()),
      metadata: range(9).map((i) => meta(i === 4 ? "2.3.1" : "2.3.11", I64_MIN + BigInt(i))),
    }),
  ),
);
vec("ToClient", "kv put response", kvResp(8, U("KvPutResponse")));
vec("ToClient", "kv delete response", kvResp(9, U("KvDeleteResponse")));
vec("ToClient", "kv drop response", kvResp(10, U("KvDropResponse")));
vec("ToClient", "kv put response zero request id", kvResp(0, U("KvPutResponse")));
vec("ToClient", "kv drop response u32 max request id", kvResp(U32_MAX, U("KvDropResponse")));

const ctm = (messageId, messageKind) => U("ToClientTunnelMessage", { messageId, messageKind });
const reqStart = (actorId, method, path, hdrs, body, stream) =>
  U("ToClientRequestStart", { actorId, method, path, headers: hdrs, body, stream });

vec(
  "ToClient",
  "tunnel request start GET",
  ctm(MID, reqStart(ID, "GET", "/health", headers(["host", "localhost"], ["accept", "*/*"]), null, false)),
);
vec(
  "ToClient",
  "tunnel request start POST body",
  ctm(
    mid(b(0xa, 0xb, 0xc, 0xd), b(1, 0, 0, 0), 0),
    reqStart(
      ID,
      "POST",
      "/action/increment?x=1&y=%20",
      headers(["content-type", "application/cbor"], ["content-length", "3"], ["x-rivet-encoding", "cbor"]),
      b(0x83, 0x01, 0x02),
      false,
    ),
  ),
);
vec(
  "ToClient",
  "tunnel request start empty everything, stream",
  ctm(mid(b(0, 0, 0, 0), b(0, 0, 0, 0), 0), reqStart("", "", "", new Map(), null, true)),
);
vec(
  "ToClient",
  "tunnel request start utf8 path headers, empty body, u16 max index",
  ctm(
    mid(b(1, 2, 3, 4), b(5, 6, 7, 8), U16_MAX),
    reqStart(ID, "PUT", "/ключ/🚀/日本語", headers(["x-ключ", "значение"], ["x-emoji", "🚀 actor"]), b(), false),
  ),
);
vec(
  "ToClient",
  "tunnel request start 300-byte body",
  ctm(MID, reqStart(ID, "POST", "/upload", headers(["content-length", "300"]), pat(300), false)),
);
vec(
  "ToClient",
  "tunnel request start header order preserved",
  ctm(
    MID,
    reqStart(ID, "GET", "/", headers(["z", "1"], ["a", "2"], ["10", "3"], ["2", "4"], ["M", "5"]), null, false),
  ),
);
vec("ToClient", "tunnel request chunk", ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 1), U("ToClientRequestChunk", { body: pat(128), finish: false })));
vec("ToClient", "tunnel request chunk empty final", ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 2), U("ToClientRequestChunk", { body: b(), finish: true })));
vec("ToClient", "tunnel request abort", ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 3), U("ToClientRequestAbort")));
vec(
  "ToClient",
  "tunnel websocket open",
  ctm(
    MID,
    U("ToClientWebSocketOpen", {
      actorId: ID,
      path: "/connect/websocket",
      headers: headers(["sec-websocket-protocol", "rivet"], ["upgrade", "websocket"]),
    }),
  ),
);
vec(
  "ToClient",
  "tunnel websocket open empty headers",
  ctm(MID, U("ToClientWebSocketOpen", { actorId: "", path: "/", headers: new Map() })),
);
vec(
  "ToClient",
  "tunnel websocket message binary",
  ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 1), U("ToClientWebSocketMessage", { data: pat(300), binary: true })),
);
vec(
  "ToClient",
  "tunnel websocket message text",
  ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 2), U("ToClientWebSocketMessage", { data: u('{"msg":"日本語 🚀"}'), binary: false })),
);
vec("ToClient", "tunnel websocket message empty binary", ctm(MID, U("ToClientWebSocketMessage", { data: b(), binary: true })));
vec("ToClient", "tunnel websocket close absent code and reason", ctm(MID, U("ToClientWebSocketClose", { code: null, reason: null })));
vec("ToClient", "tunnel websocket close 1000 reason", ctm(MID, U("ToClientWebSocketClose", { code: 1000, reason: "bye" })));
vec("ToClient", "tunnel websocket close code only", ctm(MID, U("ToClientWebSocketClose", { code: 1011, reason: null })));
vec(
  "ToClient",
  "tunnel websocket close reason only utf8 u16 max index",
  ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), U16_MAX), U("ToClientWebSocketClose", { code: null, reason: "пока 🚀" })),
);
vec("ToClient", "tunnel websocket close u16 max code, empty reason", ctm(MID, U("ToClientWebSocketClose", { code: U16_MAX, reason: "" })));

vec("ToClient", "spec 8.1 ping", U("ToClientPing", { ts: TS }));
vec("ToClient", "ping zero", U("ToClientPing", { ts: 0n }));
vec("ToClient", "ping i64 max", U("ToClientPing", { ts: I64_MAX }));
vec("ToClient", "ping i64 min", U("ToClientPing", { ts: I64_MIN }));

// ---------------------------------------------------------------------------------------
// ToRunner (internal)

vec("ToRunner", "runner ping", U("ToRunnerPing", { gatewayId: b(1, 2, 3, 4), requestId: b(5, 6, 7, 8), ts: TS }));
vec(
  "ToRunner",
  "runner ping extremes",
  U("ToRunnerPing", { gatewayId: b(0xff, 0xff, 0xff, 0xff), requestId: b(0, 0, 0, 0), ts: I64_MIN }),
);
vec("ToRunner", "runner close", U("ToRunnerClose"));
vec("ToRunner", "runner commands empty", U("ToClientCommands", []));
vec(
  "ToRunner",
  "runner commands start and stop",
  U("ToClientCommands", [
    cmdw(cp(ID, 1, 0n), start(config("counter", "k", TS, null))),
    cmdw(cp(ID, 1, 1n), U("CommandStopActor")),
  ]),
);
vec(
  "ToRunner",
  "runner commands start with hibernating request",
  U("ToClientCommands", [
    cmdw(cp(ID, 3, 2n), start(config("ws", "日本語", TS, b(1, 2)), [hib(b(1, 2, 3, 4), b(5, 6, 7, 8))])),
  ]),
);
vec("ToRunner", "runner ack events empty", U("ToClientAckEvents", { lastEventCheckpoints: [] }));
vec("ToRunner", "runner ack events", U("ToClientAckEvents", { lastEventCheckpoints: [cp(ID, 1, 5n), cp("b", 2, 6n)] }));
vec(
  "ToRunner",
  "runner tunnel request start",
  ctm(MID, reqStart(ID, "GET", "/", headers(["host", "example"]), null, false)),
);
vec("ToRunner", "runner tunnel request abort", ctm(MID, U("ToClientRequestAbort")));
vec(
  "ToRunner",
  "runner tunnel websocket message",
  ctm(mid(b(1, 2, 3, 4), b(5, 6, 7, 8), 7), U("ToClientWebSocketMessage", { data: u("hi"), binary: false })),
);
vec("ToRunner", "runner tunnel websocket close", ctm(MID, U("ToClientWebSocketClose", { code: 1001, reason: "going away" })));

// ---------------------------------------------------------------------------------------
// ToGateway (internal)

vec("ToGateway", "gateway pong", U("ToGatewayPong", { requestId: b(5, 6, 7, 8), ts: TS }));
vec("ToGateway", "gateway pong extremes", U("ToGatewayPong", { requestId: b(0, 0, 0, 0), ts: I64_MAX }));
vec(
  "ToGateway",
  "gateway tunnel response start",
  stm(MID, U("ToServerResponseStart", { status: 200, headers: headers(["content-type", "text/plain"]), body: u("ok"), stream: false })),
);
vec("ToGateway", "gateway tunnel response chunk", stm(MID, U("ToServerResponseChunk", { body: pat(127), finish: true })));
vec("ToGateway", "gateway tunnel response abort", stm(MID, U("ToServerResponseAbort")));
vec("ToGateway", "gateway tunnel websocket open", stm(MID, U("ToServerWebSocketOpen", { canHibernate: true })));
vec("ToGateway", "gateway tunnel websocket message", stm(MID, U("ToServerWebSocketMessage", { data: u("🚀"), binary: false })));
vec("ToGateway", "gateway tunnel websocket message ack", stm(MID, U("ToServerWebSocketMessageAck", { index: 300 })));
vec(
  "ToGateway",
  "gateway tunnel websocket close",
  stm(MID, U("ToServerWebSocketClose", { code: 1000, reason: null, hibernate: true })),
);

// ---------------------------------------------------------------------------------------
// ToServerlessServer (internal)

vec("ToServerlessServer", "serverless init v7", U("ToServerlessServerInit", { runnerId: ID, runnerProtocolVersion: 7 }));
vec("ToServerlessServer", "serverless init empty id zero version", U("ToServerlessServerInit", { runnerId: "", runnerProtocolVersion: 0 }));
vec(
  "ToServerlessServer",
  "serverless init utf8 id u16 max version",
  U("ToServerlessServerInit", { runnerId: "日本語 🚀", runnerProtocolVersion: U16_MAX }),
);

// ---------------------------------------------------------------------------------------
// ActorCommandKeyData (stored)

vec("ActorCommandKeyData", "spec 8.4 start actor (v7 body)", start(config("counter", "k", TS, null)));
vec("ActorCommandKeyData", "stored start minimal", start(config("", null, 0n, null)));
vec(
  "ActorCommandKeyData",
  "stored start full",
  start(config("chat-room", "ключ", I64_MAX, pat(128)), [hib(b(1, 2, 3, 4), b(5, 6, 7, 8))]),
);
vec("ActorCommandKeyData", "stored start negative create ts", start(config("🚀 actor", "", -1n, b())));
vec("ActorCommandKeyData", "stored stop", U("CommandStopActor"));

// ---------------------------------------------------------------------------------------
// Worked examples of the wire spec (shared/spec/runner-protocol.md §8).

const ID_HEX = toHex(u(ID));
const TS_HEX = "0068e5cf8b010000";
if (ID_HEX !== "356a786c7635626f756d756c6a783264326e76796174306f3265646c3030") fail("ID hex");
const SPEC = [
  ["ToServer", "spec 8.1 pong", `04${TS_HEX}`],
  ["ToClient", "spec 8.1 ping", `05${TS_HEX}`],
  ["ToServer", "spec 8.2 kv get request", `051e${ID_HEX}07000000000101 01`],
  ["ToClient", "spec 8.2 kv get response", `0307000000 01 010101 0101aa 01 05322e312e37 ${TS_HEX}`],
  // §8.3 is a v8 frame; its v7 form is "the first 67 bytes of the above".
  [
    "ToClient",
    "spec 8.3 commands start actor (v7 form)",
    `0101 1e${ID_HEX} 01000000 0000000000000000 00 07636f756e746572 01016b ${TS_HEX} 00 00`,
  ],
  // §8.4 without the 2-byte embedded version and without the trailing v8 preloadedKv byte.
  ["ActorCommandKeyData", "spec 8.4 start actor (v7 body)", `00 07636f756e746572 01016b ${TS_HEX} 00 00`],
  ["ToServer", "spec 8.5 stopping", "03"],
  ["ToServer", "spec 8.5 ack commands empty", "0200"],
  ["ToServer", "spec 8.5 events stopped error", "01 01 01 61 01 00 00 00 00 00 00 00 00 00 00 00 01 01 01 00"],
  [
    "ToServer",
    "spec 8.5 init default",
    "00 07 64 65 66 61 75 6c 74 01 00 00 00 64 00 00 00 01 01 07 63 6f 75 6e 74 65 72 02 7b 7d 00",
  ],
];
for (const [type, name, want] of SPEC) {
  const v = vectors.find((x) => x.name === name);
  if (!v || v.type !== type) fail(`spec vector ${name} missing`);
  const wantHex = want.replace(/\s+/g, "");
  if (v.hex !== wantHex) {
    fail(`SPEC MISMATCH for ${name}:\n  spec: ${wantHex}\n  ts:   ${v.hex}`);
  }
}
{
  const v83 = vectors.find((x) => x.name === "spec 8.3 commands start actor (v7 form)");
  if (v83.hex.length / 2 !== 67) fail("spec 8.3 v7 form must be 67 bytes");
}

// ---------------------------------------------------------------------------------------
// Coverage: every member of every union reachable from the top-level types, both enum
// values, and every top-level type.

{
  const seenTags = new Map();
  const seenEnums = new Map();
  const walk = (t, j) => {
    switch (t.kind) {
      case "ref":
        return walk(SCHEMA.get(t.name), j);
      case "optional":
        return j === null ? undefined : walk(t.of, j);
      case "list":
        return j.forEach((e) => walk(t.of, e));
      case "map":
        return j.entries.forEach(([, v]) => walk(t.val, v));
      case "struct":
        return t.fields.forEach((f, i) => walk(f.type, j.entries[i][1]));
      case "union": {
        const [[, tag], [, val]] = j.entries;
        if (!seenTags.has(t)) seenTags.set(t, new Set());
        seenTags.get(t).add(tag);
        return walk({ kind: "ref", name: tag }, val);
      }
      case "enum":
        if (!seenEnums.has(t)) seenEnums.set(t, new Set());
        seenEnums.get(t).add(j);
        return;
    }
  };
  for (const v of vectors) walk({ kind: "ref", name: v.type }, v.json);

  const reachable = new Set();
  const reach = (t) => {
    if (t.kind === "ref") {
      if (reachable.has(t.name)) return;
      reachable.add(t.name);
      return reach(SCHEMA.get(t.name));
    }
    if (t.kind === "optional" || t.kind === "list") return reach(t.of);
    if (t.kind === "map") return reach(t.val);
    if (t.kind === "struct") return t.fields.forEach((f) => reach(f.type));
    if (t.kind === "union") return t.members.forEach((m) => reach({ kind: "ref", name: m }));
  };
  for (const name of Object.keys(CODECS)) reach({ kind: "ref", name });
  for (const name of reachable) {
    const t = SCHEMA.get(name);
    if (t.kind === "union") {
      const seen = seenTags.get(t) ?? new Set();
      const missing = t.members.filter((m) => !seen.has(m));
      if (missing.length) fail(`coverage: ${name} members never used: ${missing.join(", ")}`);
    }
    if (t.kind === "enum") {
      const seen = seenEnums.get(t) ?? new Set();
      const missing = t.values.filter((m) => !seen.has(m));
      if (missing.length) fail(`coverage: ${name} values never used: ${missing.join(", ")}`);
    }
  }
  const unreachable = [...SCHEMA.keys()].filter((n) => !reachable.has(n));
  if (unreachable.length) fail(`schema types not reachable from top-level types: ${unreachable.join(", ")}`);
}

// ---------------------------------------------------------------------------------------
// Output.

let out = "{\n";
out += ` "package": ${JSON.stringify(PACKAGE)},\n`;
out += ` "protocol_version": 7,\n`;
out += ` "vectors": [\n`;
out += vectors
  .map(
    (v) =>
      `  {\n   "type": ${JSON.stringify(v.type)}, "name": ${JSON.stringify(v.name)},\n` +
      `   "json": ${v.jsonText},\n   "hex": ${JSON.stringify(v.hex)}\n  }`,
  )
  .join(",\n");
out += "\n ]\n}\n";

// The output must be plain JSON that round-trips; integers beyond 2^53 are checked in
// text form because JSON.parse would round them.
JSON.parse(out);
writeFileSync(OUT_URL, out);

const counts = {};
for (const v of vectors) counts[v.type] = (counts[v.type] ?? 0) + 1;
process.stderr.write(
  `wrote ${vectors.length} vectors to ${OUT_URL.pathname} (${Object.entries(counts)
    .map(([k, n]) => `${k}: ${n}`)
    .join(", ")}); spec §8 examples match\n`,
);

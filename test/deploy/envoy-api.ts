import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
// Imported for its side effect: it registers google/protobuf/descriptor.proto
// (which Envoy's annotations import) with protobufjs.
import "@grpc/proto-loader";

// No Envoy binary is available here, so Envoy configs are checked against
// Envoy's own v3 API protos (shipped by @grpc/grpc-js-xds): every key must be
// a field of its message, every `@type` a loaded message, every enum value
// defined, at most one member of a oneof set, and no deprecated field used.
// This is what Envoy's own config loader rejects first; PGV rules are not
// checked.

const require = createRequire(import.meta.url);
const deps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
const includeDirs = ["envoy-api", "googleapis", "xds", "protoc-gen-validate"].map((d) =>
  join(deps, d),
);
// The protobufjs that @grpc/proto-loader uses (and has registered descriptor.proto with).
const protobuf = require(
  require.resolve("protobufjs", { paths: [dirname(require.resolve("@grpc/proto-loader"))] }),
) as { Root: new () => ProtoRoot };

/** The few parts of protobufjs reflection used here. */
interface ProtoRoot {
  resolvePath: (origin: string, target: string) => string | null;
  loadSync(files: string[], options: { keepCase: boolean }): ProtoRoot;
  resolveAll(): ProtoRoot;
  lookup(path: string): ProtoType | ProtoEnum | null;
}
interface ProtoType {
  readonly fullName: string;
  readonly fields: Record<string, ProtoField>;
  readonly oneofsArray: readonly { readonly name: string; readonly oneof: readonly string[] }[];
}
interface ProtoEnum {
  readonly values: Record<string, number>;
}
interface ProtoField {
  readonly name: string;
  readonly type: string;
  readonly repeated: boolean;
  readonly map: boolean;
  readonly resolvedType: ProtoType | ProtoEnum | null;
  readonly options?: Record<string, unknown>;
}

/** Every Envoy API file a config in deploy/envoy may name with `@type`. */
const FILES = [
  "envoy/config/bootstrap/v3/bootstrap.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
  "envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
  "envoy/extensions/path/match/uri_template/v3/uri_template_match.proto",
  "envoy/extensions/access_loggers/stream/v3/stream.proto",
];

let root: ProtoRoot | undefined;
function envoyApi(): ProtoRoot {
  if (root) return root;
  const loaded = new protobuf.Root();
  loaded.resolvePath = (_origin, target) => {
    for (const dir of includeDirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target; // google/protobuf/*: protobufjs's bundled definitions
  };
  root = loaded.loadSync(FILES, { keepCase: true }).resolveAll();
  return root;
}

const TYPE_URL_PREFIX = "type.googleapis.com/";
const INTEGER = /^-?\d+$/;
const DURATION = /^-?\d+(\.\d{1,9})?s$/;

/**
 * Checks a config (as parsed from YAML) against an Envoy message type, e.g.
 * `envoy.config.bootstrap.v3.Bootstrap`. Returns the problems, each with the
 * path to the offending value; empty when the config is valid.
 */
export function checkEnvoyMessage(typeName: string, value: unknown): string[] {
  const type = envoyApi().lookup(typeName);
  if (!type || !("fields" in type)) return [`unknown message type ${typeName}`];
  const problems: string[] = [];
  checkMessage(type, value, "$", problems);
  return problems;
}

/** All `@type` URLs in a parsed config, in document order. */
export function typeUrls(value: unknown): string[] {
  const found: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) walk(item);
    } else if (isObject(node)) {
      for (const [key, child] of Object.entries(node)) {
        if (key === "@type" && typeof child === "string") found.push(child);
        else walk(child);
      }
    }
  };
  walk(value);
  return found;
}

function checkMessage(type: ProtoType, value: unknown, path: string, problems: string[]): void {
  const special = WELL_KNOWN[type.fullName.replace(/^\./, "")];
  if (special) {
    if (!special(value)) problems.push(`${path}: not a valid ${type.fullName.slice(1)}`);
    return;
  }
  if (!isObject(value)) {
    problems.push(`${path}: expected a ${type.fullName.slice(1)} object`);
    return;
  }
  if (type.fullName === ".google.protobuf.Any") {
    const url = value["@type"];
    if (typeof url !== "string" || !url.startsWith(TYPE_URL_PREFIX)) {
      problems.push(`${path}: Any without a type.googleapis.com/ @type`);
      return;
    }
    const inner = envoyApi().lookup(url.slice(TYPE_URL_PREFIX.length));
    if (!inner || !("fields" in inner)) {
      problems.push(`${path}: unknown @type ${url}`);
      return;
    }
    const { "@type": _url, ...rest } = value;
    checkMessage(inner, rest, `${path}<${url.slice(TYPE_URL_PREFIX.length)}>`, problems);
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    const field = type.fields[key] ?? type.fields[snakeCase(key)];
    const at = `${path}.${key}`;
    if (!field) {
      problems.push(`${at}: no such field in ${type.fullName.slice(1)}`);
      continue;
    }
    if (field.options?.deprecated === true) problems.push(`${at}: deprecated field`);
    if (field.map) {
      if (!isObject(child)) problems.push(`${at}: expected a map`);
      else for (const [k, v] of Object.entries(child)) checkValue(field, v, `${at}.${k}`, problems);
    } else if (field.repeated) {
      if (!Array.isArray(child)) problems.push(`${at}: expected a list`);
      else {
        for (const [i, item] of child.entries()) checkValue(field, item, `${at}[${i}]`, problems);
      }
    } else {
      checkValue(field, child, at, problems);
    }
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.oneof.filter(
      (name) => Object.hasOwn(value, name) || Object.hasOwn(value, camelCase(name)),
    );
    if (set.length > 1) problems.push(`${path}: oneof ${oneof.name} has ${set.join(" and ")}`);
  }
}

function checkValue(field: ProtoField, value: unknown, path: string, problems: string[]): void {
  const resolved = field.resolvedType;
  if (resolved && "fields" in resolved) {
    checkMessage(resolved, value, path, problems);
    return;
  }
  if (resolved && "values" in resolved) {
    const ok =
      (typeof value === "string" && value in resolved.values) ||
      (typeof value === "number" && Object.values(resolved.values).includes(value));
    if (!ok) problems.push(`${path}: ${String(value)} is not a value of enum ${field.type}`);
    return;
  }
  const scalar = SCALARS[field.type];
  if (!scalar) problems.push(`${path}: unresolved type ${field.type}`);
  else if (!scalar(value))
    problems.push(`${path}: ${JSON.stringify(value)} is not a ${field.type}`);
}

const isInteger = (v: unknown) =>
  (typeof v === "number" && Number.isInteger(v)) || (typeof v === "string" && INTEGER.test(v));
const isNumber = (v: unknown) => typeof v === "number";
const isString = (v: unknown) => typeof v === "string";
const isBool = (v: unknown) => typeof v === "boolean";

const SCALARS: Record<string, (v: unknown) => boolean> = {
  string: isString,
  bytes: isString,
  bool: isBool,
  double: isNumber,
  float: isNumber,
  int32: isInteger,
  uint32: isInteger,
  sint32: isInteger,
  fixed32: isInteger,
  sfixed32: isInteger,
  int64: isInteger,
  uint64: isInteger,
  sint64: isInteger,
  fixed64: isInteger,
  sfixed64: isInteger,
};

/** Well-known types with a JSON form of their own (proto3 JSON mapping). */
const WELL_KNOWN: Record<string, (v: unknown) => boolean> = {
  "google.protobuf.Duration": (v) => typeof v === "string" && DURATION.test(v),
  "google.protobuf.Timestamp": isString,
  "google.protobuf.FieldMask": isString,
  "google.protobuf.Struct": isObject,
  "google.protobuf.Value": () => true,
  "google.protobuf.ListValue": Array.isArray,
  "google.protobuf.Empty": (v) => isObject(v) && Object.keys(v).length === 0,
  "google.protobuf.BoolValue": isBool,
  "google.protobuf.StringValue": isString,
  "google.protobuf.BytesValue": isString,
  "google.protobuf.DoubleValue": isNumber,
  "google.protobuf.FloatValue": isNumber,
  "google.protobuf.Int32Value": isInteger,
  "google.protobuf.UInt32Value": isInteger,
  "google.protobuf.Int64Value": isInteger,
  "google.protobuf.UInt64Value": isInteger,
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function camelCase(name: string): string {
  return name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

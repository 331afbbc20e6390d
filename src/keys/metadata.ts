import { identityTextProblem } from "./text.js";

/** A key's metadata: a JSON object (DESIGN "Key lifecycle"). */
export type KeyMetadata = { readonly [key: string]: MetadataValue };
export type MetadataValue =
  | string
  | number
  | boolean
  | null
  | readonly MetadataValue[]
  | { readonly [key: string]: MetadataValue };

/** The most a key's metadata may hold, serialised as JSON (UTF-8 bytes). */
export const MAX_METADATA_BYTES = 4096;
/** Deepest nesting of objects and lists inside the metadata object. */
const MAX_DEPTH = 4;
/** Longest member name, in characters. */
const MAX_NAME_CHARS = 128;

/**
 * What is wrong with a would-be metadata value, or undefined when it is a
 * JSON object keyward stores: at most 4 KiB serialised, members named by
 * non-empty text of at most 128 characters, nesting at most 4 deep, and no
 * string (name or value) holding a control character, a line separator or
 * an unpaired surrogate (the values reach Envoy, Lua filters, logs and
 * upstreams).
 */
export function metadataProblem(value: unknown): string | undefined {
  if (!isPlainObject(value)) return "must be a JSON object";
  const problem = valueProblem(value, 0);
  if (problem) return problem;
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > MAX_METADATA_BYTES) {
    return `is ${bytes} bytes as JSON; at most ${MAX_METADATA_BYTES}`;
  }
  return undefined;
}

function valueProblem(value: unknown, depth: number): string | undefined {
  if (value === null || typeof value === "boolean") return undefined;
  if (typeof value === "number")
    return Number.isFinite(value) ? undefined : "holds a number JSON cannot carry";
  if (typeof value === "string") return textProblem(value, "a value");
  if (depth >= MAX_DEPTH) return `nests deeper than ${MAX_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = valueProblem(item, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  if (!isPlainObject(value)) return "holds a value that is not JSON";
  for (const [name, member] of Object.entries(value)) {
    if (name === "" || [...name].length > MAX_NAME_CHARS) {
      return `has a member name that is empty or longer than ${MAX_NAME_CHARS} characters`;
    }
    const problem =
      textProblem(name, `member name ${JSON.stringify(name)}`) ?? valueProblem(member, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

function textProblem(text: string, what: string): string | undefined {
  // The identity rule's characters, without its length bound (the 4 KiB bound covers it).
  const problem = identityTextProblem(text, Number.POSITIVE_INFINITY);
  return problem ? `${what} ${problem}` : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The stored form: JSON text, or null for no metadata (an empty object clears it). */
export function storedMetadata(value: KeyMetadata | undefined): string | null {
  return value === undefined || Object.keys(value).length === 0 ? null : JSON.stringify(value);
}

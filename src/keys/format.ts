import { hash, randomBytes } from "node:crypto";
import type { KeyKind } from "../auth/identity.js";

const KEY_PATTERN = /^sk_(live|user|agent|worker)_([0-9a-f]{16})_([0-9a-f]{48})$/;

/** A syntactically valid API key, split into its public parts. */
export interface ParsedKey {
  readonly kind: KeyKind;
  /** The 16-hex key id. */
  readonly id: string;
  /** `sk_<kind>_<id>`: what the store indexes on. Not secret. */
  readonly lookup: string;
}

/** Parses `sk_<kind>_<16 hex>_<48 hex>`; anything else is undefined. */
export function parseKey(token: string): ParsedKey | undefined {
  const match = KEY_PATTERN.exec(token);
  if (!match) return undefined;
  const kind = match[1] as KeyKind;
  const id = match[2] as string;
  return { kind, id, lookup: `sk_${kind}_${id}` };
}

export function keyLookup(kind: KeyKind, id: string): string {
  return `sk_${kind}_${id}`;
}

/** A fresh random key id (16 lowercase hex). */
export function newKeyId(): string {
  return randomBytes(8).toString("hex");
}

/** A whole key string with a fresh 48-hex secret for the given id. */
export function mintKey(kind: KeyKind, id: string): string {
  return `${keyLookup(kind, id)}_${randomBytes(24).toString("hex")}`;
}

/** SHA-256 of the whole key string: the only form of the secret the store keeps. */
export function hashKey(token: string): Buffer {
  return hash("sha256", token, "buffer");
}

/**
 * The same digest as {@link hashKey}, in base64: a cache key that costs no
 * Buffer. `Buffer.from(digest, "base64")` gives back the stored form.
 */
export function keyDigest(token: string): string {
  return hash("sha256", token, "base64");
}

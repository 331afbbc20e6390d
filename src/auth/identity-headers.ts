import type { Identity } from "./identity.js";

/** The default prefix of the identity headers (config `headers.prefix`). */
export const DEFAULT_IDENTITY_PREFIX = "x-auth-";

/**
 * The identity headers of an allow, in a fixed order, shared by every
 * transport: `<prefix>kind`, `subject`, `key-id`, `tenant`, `scopes`
 * (space-separated), every value passed through {@link headerValue}. A fact
 * keyward has nothing to say about is an empty value; each transport decides
 * whether to send it empty or leave it out (and remove a client-sent one),
 * so an empty fact can never let a forged one through.
 */
export function identityHeaders(
  identity: Identity | undefined,
  prefix: string = DEFAULT_IDENTITY_PREFIX,
): [name: string, value: string][] {
  // A shadow allow of a credential that proved nobody: every fact is empty.
  if (identity === undefined) {
    return [
      [`${prefix}kind`, ""],
      [`${prefix}subject`, ""],
      [`${prefix}key-id`, ""],
      [`${prefix}tenant`, ""],
      [`${prefix}scopes`, ""],
    ];
  }
  return [
    [`${prefix}kind`, headerValue(identity.kind)],
    [`${prefix}subject`, headerValue(identity.subject)],
    [`${prefix}key-id`, headerValue(identity.keyId)],
    [`${prefix}tenant`, headerValue(identity.tenant)],
    [`${prefix}scopes`, headerValue(identity.scopes.join(" "))],
  ];
}

// Already a header value that needs no encoding: visible ASCII except "%",
// inner spaces allowed, none at either end (the common case: one regex test).
const PLAIN = /^(?:[\x21-\x24\x26-\x7e](?:[\x20-\x24\x26-\x7e]*[\x21-\x24\x26-\x7e])?)?$/;
const HEX = "0123456789ABCDEF";

/**
 * The one rule for identity values in headers: the UTF-8 bytes of the value,
 * with every byte outside visible ASCII (0x21–0x7E), `%` itself, and spaces
 * at either end percent-encoded (`%XX`, upper-case hex); spaces between other
 * characters stay. The result is always a valid HTTP field value that Envoy,
 * nginx, Traefik and Caddy pass through unchanged (no CR, LF, NUL, no
 * obs-text, no edge whitespace a parser would trim), and the upstream gets
 * the original back with one `decodeURIComponent`. A value already made of
 * visible ASCII without `%` (every key id, kind and scope keyward mints) is
 * unchanged. A lone UTF-16 surrogate (possible in a JWT claim) cannot be
 * UTF-8 and is carried as U+FFFD.
 *
 * Only headers are encoded: dynamic metadata (a protobuf Struct) and JSON
 * bodies carry the raw value.
 */
export function headerValue(value: string): string {
  if (PLAIN.test(value)) return value;
  const bytes = Buffer.from(value, "utf8");
  let first = 0;
  while (first < bytes.length && bytes[first] === 0x20) first++;
  let last = bytes.length - 1;
  while (last >= first && bytes[last] === 0x20) last--;
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    const keep =
      (byte > 0x20 && byte < 0x7f && byte !== 0x25) || (byte === 0x20 && i > first && i < last);
    out += keep ? String.fromCharCode(byte) : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

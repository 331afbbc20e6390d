import { MAX_TOKEN_LENGTH } from "../auth/token.js";
import { type ParsedKey, parseKey } from "../keys/format.js";

/** What the `authorization` header holds, classified but not yet verified. */
export type Credential =
  | { readonly type: "none" }
  | { readonly type: "malformed"; readonly reason: string }
  | { readonly type: "key"; readonly token: string; readonly key: ParsedKey }
  | { readonly type: "jwt"; readonly token: string };

const NONE: Credential = { type: "none" };
// RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token.
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Reads and classifies the bearer credential. Never throws; anything that is
 * not exactly one well-formed bearer token of a known shape is `malformed`.
 */
export function readCredential(authorization: string | undefined): Credential {
  if (authorization === undefined || authorization.trim() === "") return NONE;
  if (authorization.length > MAX_TOKEN_LENGTH + 16) {
    return { type: "malformed", reason: "authorization header too long" };
  }
  const match = BEARER.exec(authorization);
  if (!match) return { type: "malformed", reason: "not a Bearer credential" };
  const token = match[1] as string;
  if (token.startsWith("sk_")) {
    const key = parseKey(token);
    return key ? { type: "key", token, key } : { type: "malformed", reason: "malformed API key" };
  }
  if (JWT_SHAPE.test(token)) return { type: "jwt", token };
  return { type: "malformed", reason: "unrecognised token format" };
}

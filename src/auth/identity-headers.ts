import type { Identity } from "./identity.js";

/** The default prefix of the identity headers (config `headers.prefix`). */
export const DEFAULT_IDENTITY_PREFIX = "x-auth-";

/**
 * The identity headers an allow sends upstream, in a fixed order, shared by
 * every transport: `<prefix>kind`, `subject`, `key-id`, `tenant`, `scopes`
 * (space-separated). A header whose value would be empty is left out; the
 * transports then remove any client-sent header of that name instead, so an
 * empty fact can never let a forged one through.
 */
export function identityHeaders(
  identity: Identity,
  prefix: string = DEFAULT_IDENTITY_PREFIX,
): [name: string, value: string][] {
  const headers: [string, string][] = [
    [`${prefix}kind`, identity.kind],
    [`${prefix}subject`, identity.subject],
    [`${prefix}key-id`, identity.keyId],
    [`${prefix}tenant`, identity.tenant],
    [`${prefix}scopes`, identity.scopes.join(" ")],
  ];
  return headers.filter(([, value]) => value !== "");
}

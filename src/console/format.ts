import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";

const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

/** A time as the person's locale writes it, or a dash when unset. */
export function formatTime(time: Timestamp | undefined): string {
  return time ? DATE_TIME.format(timestampDate(time)) : "—";
}

/** ISO 8601 for a <time datetime> attribute. */
export function isoTime(time: Timestamp | undefined): string | undefined {
  return time ? timestampDate(time).toISOString() : undefined;
}

/**
 * An issuer URL without its scheme and trailing slash, for a button label
 * ("Sign in with tenant.eu.auth0.com"); the path stays, so that two issuers
 * on one host are told apart.
 */
export function issuerHost(issuer: string): string {
  try {
    const url = new URL(issuer);
    return `${url.host}${url.pathname}`.replace(/\/+$/, "") || issuer;
  } catch {
    return issuer;
  }
}

/** A key's label in sentences: its name, or its public lookup when unnamed. */
export function keyLabel(key: { name: string; keyLookup: string }): string {
  return key.name || key.keyLookup;
}

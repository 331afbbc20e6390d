import type { KeyJson, UsageHourJson } from "../keys/json.js";
import type { Minted } from "./key-backend.js";

/** Prints a minted key: the key, then its secret, once (or both as JSON). */
export function printMinted(json: boolean | undefined, minted: Minted): void {
  if (json) {
    write(minted);
    return;
  }
  write(describe(minted.key));
  write("secret (shown once; store it in your secret manager now):");
  write(minted.secret);
}

export function printKey(json: boolean | undefined, key: KeyJson): void {
  write(json ? { key } : describe(key));
}

/** One line per key: id, lookup, kind, status, then what is set. */
export function describe(json: KeyJson): string {
  const parts = [
    `${json.id}  ${json.keyLookup}  ${json.kind}  ${json.status}`,
    json.name && `name=${JSON.stringify(json.name)}`,
    json.tenant && `tenant=${json.tenant}`,
    json.owner && `owner=${json.owner}`,
    `scopes=${json.scopes.join(",") || "-"}`,
    json.binding && `run=${json.binding.experiment}/${json.binding.variation}/${json.binding.run}`,
    `expires=${json.expiresAt ?? "never"}`,
    json.lastUsedAt && `last-used=${json.lastUsedAt}`,
  ];
  return parts.filter(Boolean).join("  ");
}

/** One line per hour: the hour, allowed, then each deny code's count. */
export function describeUsage(hour: UsageHourJson): string {
  const denied = Object.entries(hour.denied).map(([code, n]) => `${code}=${n}`);
  return [hour.hour, `allowed=${hour.allowed}`, ...denied].join("  ");
}

/** A line of text, or a value as one line of JSON, on stdout. */
export function write(value: unknown): void {
  process.stdout.write(typeof value === "string" ? `${value}\n` : `${JSON.stringify(value)}\n`);
}

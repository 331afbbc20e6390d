import { Code } from "@connectrpc/connect";

/** snake_case name of a Connect code, as used in error bodies, audit rows and CLI messages. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(
    /[A-Z]/g,
    (letter, index) => (index ? "_" : "") + letter.toLowerCase(),
  );
}

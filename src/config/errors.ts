import type { z } from "zod";

/** One line naming the first offending field and what is wrong with it. */
export function formatZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const prefix = path ? `${path}.` : "";
    return `${prefix}${issue.keys.join(", ")}: unknown field`;
  }
  return `${path || "(top level)"}: ${issue.message}`;
}

/** A configuration problem that must stop start-up with its one-line message. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

import { z } from "zod";
import { identityTextProblem } from "../keys/input.js";

// The REST routes' request bodies (rest-routes.ts), strictly: an unknown
// field is a 400 naming it, not silently ignored.

const isoTime = z.iso.datetime({
  offset: true,
  message: "expected an ISO 8601 time such as 2025-01-01T00:00:00Z",
});
const scopes = z.array(z.string()).default([]);
/**
 * A name, description, owner or tenant: the identity rule (keys/input.ts).
 * Checked here as well as in the service because JSON can carry what the
 * in-process call cannot: an unpaired surrogate would reach the service as
 * U+FFFD, silently changed instead of refused.
 */
const identityText = z.string().superRefine((value, context) => {
  const problem = identityTextProblem(value);
  if (problem) context.addIssue({ code: "custom", message: problem });
});

/** A key's rate limit in a body; the service checks the bounds. */
const rateLimitBody = z
  .object({
    requests: z.number().int().min(1),
    perSeconds: z.number().int().min(1),
    burst: z.number().int().min(0).default(0),
  })
  .strict();

// The seeds' request bodies, strictly: an unknown field is a 400 naming it,
// not silently ignored.
export const adminCreateBody = z
  .object({
    name: identityText.default(""),
    description: identityText.optional(),
    scopes,
    expiresAt: isoTime.optional(),
    kind: z.string().optional(),
    tenant: identityText.optional(),
    owner: identityText.optional(),
    binding: z
      .object({ experiment: z.string(), variation: z.string(), run: z.string() })
      .strict()
      .optional(),
    idempotencyKey: z.string().max(200).optional(),
    // Checked by the service (keys/metadata.ts): a JSON object of at most 4 KiB.
    metadata: z.record(z.string(), z.unknown()).optional(),
    allowedCidrs: z.array(z.string()).optional(),
    rateLimit: rateLimitBody.optional(),
  })
  .strict();

export const updateBody = z
  .object({
    name: identityText.optional(),
    scopes: z.array(z.string()).optional(),
    expiresAt: isoTime.optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    allowedCidrs: z.array(z.string()).optional(),
    rateLimit: rateLimitBody.nullable().optional(),
  })
  .strict();

export const apiKeysCreateBody = z
  .object({
    description: identityText.default(""),
    name: identityText.optional(),
    scopes,
    expiresAt: isoTime.optional(),
    kind: z.enum(["user", "agent"]).optional(),
  })
  .strict();

export const rotateBody = z
  .object({ graceSeconds: z.number().int().min(0).max(0xffff_ffff).optional() })
  .strict();

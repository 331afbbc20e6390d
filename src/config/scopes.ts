import { z } from "zod";
import { SCOPE_TOKEN } from "../auth/scope.js";

/** A list of scope tokens (RFC 6749), as the policy and the config's `scopes:` write them. */
export const scopeList = z.array(
  z
    .string()
    .regex(
      SCOPE_TOKEN,
      "a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749)",
    ),
);

import type { MaybePromise } from "../lib/maybe-async.js";
import type { Identity } from "./identity.js";

/** The longest bearer token considered at all; longer is malformed, never parsed. */
export const MAX_TOKEN_LENGTH = 8192;

/** The result of verifying a JWT (implemented by src/jwt). */
export type TokenResult =
  | { readonly ok: true; readonly identity: Identity }
  | {
      readonly ok: false;
      readonly code: "invalid_token" | "token_expired" | "unavailable";
      readonly reason: string;
    };

/** Verifies bearer JWTs. Must never throw; may answer synchronously (a cached verification). */
export interface TokenVerifier {
  verify(token: string): MaybePromise<TokenResult>;
}

/**
 * Sign-in for the key console. The access token lives in this module's
 * caller's memory only: never in localStorage, sessionStorage or a cookie,
 * so it is gone when the tab closes or the user signs out. Only the PKCE
 * verifier and the state of a sign-in in progress survive the redirect to
 * the identity provider (in sessionStorage, removed on return): neither is a
 * credential without the one-time code the IdP sends back.
 */

/** An issuer the console may sign in with, as /console/config.json lists it (src/admin/console.ts). */
export interface ConsoleClient {
  readonly issuer: string;
  readonly client_id: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly audience: string;
  readonly scope: string;
}

/** A signed-in token, in memory. */
export interface Session {
  readonly token: string;
  /** Epoch ms when the token stops working; undefined when unknown (an API key without expiry). */
  readonly expiresAt: number | undefined;
  /** The issuer signed in with, or "token" when pasted. */
  readonly via: string;
}

/** A sign-in that could not complete; its message is written for the person signing in. */
export class SignInError extends Error {}

const PENDING = "keyward.console.pending-sign-in";

/** The console's own address: the IdP sends the code back here. */
export function redirectUri(): string {
  return `${location.origin}/console/`;
}

/** Starts the authorization-code flow with PKCE (RFC 7636, S256): leaves the page for the IdP. */
export async function beginSignIn(client: ConsoleClient): Promise<void> {
  const verifier = randomToken(32);
  const state = randomToken(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({ state, verifier, issuer: client.issuer }));
  const url = new URL(client.authorization_endpoint);
  const params: Record<string, string> = {
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirectUri(),
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
    state,
  };
  if (client.audience) params.audience = client.audience;
  if (client.scope) params.scope = client.scope;
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  location.assign(url.toString());
}

/**
 * Completes a sign-in when this page load is the IdP's redirect back (the URL
 * has `code` or `error`); undefined on any other load. Throws SignInError.
 */
export async function finishSignIn(
  clients: readonly ConsoleClient[],
): Promise<Session | undefined> {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return undefined;
  // The code is single-use and must not stay in the address bar or the history.
  history.replaceState(null, "", location.pathname);
  const pending = readPending();
  if (params.has("error")) {
    const reason = params.get("error_description") || params.get("error");
    throw new SignInError(`The identity provider did not sign you in: ${reason}.`);
  }
  // The state ties this answer to a sign-in started in this tab (RFC 6749 §10.12).
  if (!pending || pending.state !== params.get("state")) {
    throw new SignInError(
      "This sign-in answer does not belong to a sign-in started here. Sign in again.",
    );
  }
  const client = clients.find((candidate) => candidate.issuer === pending.issuer);
  if (!client) throw new SignInError("The identity provider is no longer configured here.");
  let response: Response;
  try {
    response = await fetch(client.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      credentials: "omit",
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code") ?? "",
        redirect_uri: redirectUri(),
        client_id: client.client_id,
        code_verifier: pending.verifier,
      }),
    });
  } catch {
    throw new SignInError("The identity provider's token endpoint cannot be reached.");
  }
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok || typeof body.access_token !== "string") {
    const reason = body.error_description ?? body.error ?? `HTTP ${response.status}`;
    throw new SignInError(`The identity provider did not issue a token: ${String(reason)}.`);
  }
  return {
    token: body.access_token,
    expiresAt: expiryOf(body.access_token, body.expires_in),
    via: client.issuer,
  };
}

/** A token pasted into the sign-in form. */
export function pastedSession(token: string): Session {
  const trimmed = token.trim();
  return { token: trimmed, expiresAt: expiryOf(trimmed), via: "token" };
}

function readPending(): { state: string; verifier: string; issuer: string } | undefined {
  const raw = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  try {
    const value = JSON.parse(raw ?? "null") as Record<string, unknown> | null;
    if (
      typeof value?.state === "string" &&
      typeof value.verifier === "string" &&
      typeof value.issuer === "string"
    ) {
      return { state: value.state, verifier: value.verifier, issuer: value.issuer };
    }
  } catch {
    // a damaged entry is no pending sign-in
  }
  return undefined;
}

/**
 * When a token stops working: a JWT's `exp` and the token endpoint's
 * `expires_in`, whichever is sooner. Only to tell the user in time; keyward
 * itself verifies every token on every call.
 */
function expiryOf(token: string, expiresIn?: unknown): number | undefined {
  let at: number | undefined;
  const payload = token.split(".")[1];
  if (token.split(".").length === 3 && payload) {
    try {
      const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as {
        exp?: unknown;
      };
      if (typeof claims.exp === "number") at = claims.exp * 1000;
    } catch {
      // not a JWT we can read: no known expiry
    }
  }
  if (typeof expiresIn === "number" && expiresIn > 0) {
    const byLifetime = Date.now() + expiresIn * 1000;
    at = at === undefined ? byLifetime : Math.min(at, byLifetime);
  }
  return at;
}

function randomToken(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

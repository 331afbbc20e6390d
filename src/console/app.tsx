import { useEffect, useState } from "preact/hooks";
import type { GetServerInfoResponse } from "../gen/keyward/admin/v1/admin_pb.js";
import { describeError, type KeyClient, keyClient } from "./api.js";
import type { ConsoleClient, Session } from "./auth.js";
import { KeysScreen } from "./keys-screen.js";
import { SignIn } from "./sign-in.js";

/** Options for {@link App}. */
export interface AppProps {
  readonly clients: readonly ConsoleClient[];
  /** A session from the IdP's redirect, when this load completed a sign-in. */
  readonly initial: Session | undefined;
  /** A message for the sign-in screen (a failed sign-in). */
  readonly message: string | undefined;
}

interface SignedIn {
  readonly session: Session;
  readonly client: KeyClient;
  readonly info: GetServerInfoResponse;
}

/** setTimeout cannot wait longer than this (about 24.8 days); later expiries are left to the API. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The console: signed out, the sign-in screen; signed in, the key list. The
 * session (and so the token) is this component's state and nothing else's.
 */
export function App({ clients, initial, message: first }: AppProps) {
  const [signedIn, setSignedIn] = useState<SignedIn>();
  const [message, setMessage] = useState(first ?? "");
  const [busy, setBusy] = useState(initial !== undefined);

  const signIn = async (session: Session) => {
    setBusy(true);
    setMessage("");
    const client = keyClient(session.token);
    try {
      // Who the token is, and what it may do here; also proves keyward accepts it.
      const info = await client.getServerInfo({});
      setSignedIn({ session, client, info });
    } catch (failure) {
      setMessage(describeError(failure).message);
    } finally {
      setBusy(false);
    }
  };
  const signOut = (why: string) => {
    setSignedIn(undefined);
    setMessage(why);
  };
  useEffect(() => {
    if (initial) void signIn(initial);
  }, []);

  useEffect(() => {
    const at = signedIn?.session.expiresAt;
    document.title = signedIn ? "Keys · keyward console" : "Sign in · keyward console";
    if (at === undefined) return;
    const wait = at - Date.now();
    if (wait > MAX_TIMER_MS) return;
    const timer = setTimeout(
      () =>
        signOut(
          `Your sign-in expired at ${new Date(at).toLocaleTimeString()}. Sign in again to continue.`,
        ),
      Math.max(0, wait),
    );
    return () => clearTimeout(timer);
  }, [signedIn]);

  const caller = signedIn?.info.caller;
  return (
    <>
      <header class="bar">
        <p class="brand">
          keyward <span class="product">Key console</span>
        </p>
        {signedIn && (
          <div class="who">
            <span>
              Signed in as <strong>{caller?.subject || caller?.actor}</strong>
              {caller?.tenant ? ` (tenant ${caller.tenant})` : ""}
            </span>
            <button
              type="button"
              onClick={() => signOut("You are signed out; this tab no longer holds your token.")}
            >
              Sign out
            </button>
          </div>
        )}
      </header>
      <main>
        <p class={signedIn ? "message" : "message shown"} role="alert" hidden={!message}>
          {message}
        </p>
        {signedIn ? (
          <KeysScreen client={signedIn.client} info={signedIn.info} onSessionEnded={signOut} />
        ) : (
          <SignIn clients={clients} busy={busy} onSession={signIn} />
        )}
      </main>
    </>
  );
}

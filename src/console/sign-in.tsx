import { useState } from "preact/hooks";
import { beginSignIn, type ConsoleClient, pastedSession, type Session } from "./auth.js";
import { issuerHost } from "./format.js";

/** Options for {@link SignIn}. */
export interface SignInProps {
  /** Issuers with a `console:` block: one button each (authorization code + PKCE). */
  readonly clients: readonly ConsoleClient[];
  readonly busy: boolean;
  readonly onSession: (session: Session) => void;
}

/** The sign-in screen: an identity provider, or a pasted API key or JWT. */
export function SignIn({ clients, busy, onSession }: SignInProps) {
  const [leaving, setLeaving] = useState(false);
  return (
    <section class="sign-in" aria-labelledby="sign-in-heading">
      <h1 id="sign-in-heading">Sign in</h1>
      {clients.length > 0 && (
        <div class="providers">
          {clients.map((client) => (
            <button
              key={client.issuer}
              type="button"
              class="primary"
              disabled={leaving}
              onClick={() => {
                setLeaving(true);
                void beginSignIn(client);
              }}
            >
              Sign in with {issuerHost(client.issuer)}
            </button>
          ))}
          <p class="hint">Or use a token:</p>
        </div>
      )}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const form = event.currentTarget;
          const token = String(new FormData(form).get("token") ?? "");
          form.reset();
          if (token.trim()) onSession(pastedSession(token));
        }}
      >
        <label for="token">Token</label>
        <p id="token-help" class="hint">
          An API key (<span class="mono">sk_…</span>) or a JWT. It stays in this tab's memory only,
          and is forgotten when you sign out or close the tab.
        </p>
        <input
          id="token"
          name="token"
          type="password"
          required
          autoComplete="off"
          spellcheck={false}
          aria-describedby="token-help"
        />
        <div class="buttons">
          <button type="submit" class={clients.length > 0 ? "" : "primary"} disabled={busy}>
            Sign in
          </button>
        </div>
      </form>
    </section>
  );
}

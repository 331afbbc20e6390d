import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import type { GetServerInfoResponse, Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { describeError, type KeyClient } from "./api.js";
import { Dialog, ErrorText } from "./dialog.js";

/** Options for {@link CreateKeyDialog}. */
export interface CreateKeyProps {
  readonly client: KeyClient;
  readonly info: GetServerInfoResponse;
  /** The key was made: its one-time secret goes to the caller, which shows it once. */
  readonly onCreated: (key: Key, secret: string) => void;
  /** A refusal that ends the session (expired or revoked credential). */
  readonly onSessionEnded: (message: string) => void;
  readonly onClose: () => void;
}

const DAY = 86_400_000;
/** Lifetimes offered; "default" leaves it to keyward (keys.default_ttl for user and agent keys). */
const EXPIRIES: readonly [string, string][] = [
  ["default", "keyward's default (user and agent keys expire; others do not)"],
  ["1", "in 1 day"],
  ["30", "in 30 days"],
  ["90", "in 90 days"],
  ["365", "in 1 year"],
  ["date", "on a date…"],
];

/**
 * The `Create key` form: name, kind, scopes chosen from the known scopes, expiry.
 *
 * Long because it is one form: each field with its label, hint and error.
 */
export function CreateKeyDialog({
  client,
  info,
  onCreated,
  onSessionEnded,
  onClose,
}: CreateKeyProps) {
  const caller = info.caller;
  const kinds = caller?.mintableKinds ?? [];
  const grantable = new Set(caller?.grantableScopes ?? []);
  const [kind, setKind] = useState(kinds[0] ?? "");
  const [expiry, setExpiry] = useState("default");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const text = (name: string) => String(form.get(name) ?? "").trim();
    let expiresAt: number | undefined;
    if (expiry === "date") {
      // End of the chosen day, in the person's own time zone.
      expiresAt = new Date(`${text("expiresOn")}T23:59:59`).getTime();
      if (Number.isNaN(expiresAt)) return setError("Choose the day the key expires.");
    } else if (expiry !== "default") {
      expiresAt = Date.now() + Number(expiry) * DAY;
    }
    setBusy(true);
    setError(undefined);
    try {
      const created = await client.createKey({
        name: text("name"),
        kind,
        scopes: form.getAll("scopes").map(String),
        tenant: text("tenant"),
        owner: text("owner"),
        expiresAt: expiresAt === undefined ? undefined : timestampFromMs(expiresAt),
        binding:
          kind === "worker"
            ? { experiment: text("experiment"), variation: text("variation"), run: text("run") }
            : undefined,
      });
      if (created.key) onCreated(created.key, created.secret);
    } catch (failure) {
      const refusal = describeError(failure);
      if (refusal.endsSession) onSessionEnded(refusal.message);
      else setError(refusal.message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title="Create key" onClose={onClose} wide>
      <form class="form" onSubmit={submit}>
        <label for="create-name">Name</label>
        <input id="create-name" name="name" required maxLength={200} autoComplete="off" />

        <label for="create-kind">Kind</label>
        <select id="create-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
          {kinds.map((k) => (
            <option key={k} value={k}>
              {KIND_LABELS[k] ?? k}
            </option>
          ))}
        </select>

        {caller?.managesAll && (
          <>
            <label for="create-tenant">Tenant</label>
            <input id="create-tenant" name="tenant" autoComplete="off" />
            <label for="create-owner">Owner</label>
            <input id="create-owner" name="owner" autoComplete="off" />
          </>
        )}

        {kind === "worker" && (
          <fieldset>
            <legend>Run the worker key is bound to</legend>
            <label for="create-experiment">Experiment</label>
            <input id="create-experiment" name="experiment" required autoComplete="off" />
            <label for="create-variation">Variation</label>
            <input id="create-variation" name="variation" required autoComplete="off" />
            <label for="create-run">Run</label>
            <input id="create-run" name="run" required autoComplete="off" />
          </fieldset>
        )}

        <fieldset class="scopes">
          <legend>Scopes</legend>
          {info.knownScopes.map((scope) => {
            const mayGrant = grantable.has(scope);
            return (
              <label key={scope} class={mayGrant ? "check" : "check disabled"}>
                <input type="checkbox" name="scopes" value={scope} disabled={!mayGrant} />
                <span class="mono">{scope}</span>
                {!mayGrant && <span class="hint"> (you do not hold it)</span>}
              </label>
            );
          })}
        </fieldset>

        <label for="create-expiry">Expires</label>
        <select
          id="create-expiry"
          value={expiry}
          onChange={(e) => setExpiry(e.currentTarget.value)}
        >
          {EXPIRIES.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        {expiry === "date" && (
          <>
            <label for="create-expires-on">Expiry day</label>
            <input id="create-expires-on" name="expiresOn" type="date" required />
          </>
        )}

        <ErrorText text={error} />
        <div class="buttons">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** What each kind is for, in the form's words. */
export const KIND_LABELS: Record<string, string> = {
  live: "live: Developer API key of the tenant",
  user: "user: researcher key",
  agent: "agent: agent or developer key",
  worker: "worker: bound to one run",
};

import { useEffect, useRef, useState } from "preact/hooks";
import type { GetServerInfoResponse, Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { describeError, type KeyClient } from "./api.js";
import { CreateKeyDialog } from "./create-key.js";
import { Confirm, ErrorText } from "./dialog.js";
import { formatTime, isoTime, keyLabel } from "./format.js";
import { KeyDetails } from "./key-details.js";
import { SecretDialog } from "./secret-dialog.js";

/** Options for {@link KeysScreen}. */
export interface KeysScreenProps {
  readonly client: KeyClient;
  readonly info: GetServerInfoResponse;
  /** The API refused the credential itself (expired, revoked): sign out with this message. */
  readonly onSessionEnded: (message: string) => void;
}

/** Keys per page: one ListKeys call, whatever the tenant holds. */
export const PAGE_SIZE = 50;

interface Filters {
  readonly kind: string;
  readonly status: string;
  readonly owner: string;
  readonly run: string;
  readonly tenant: string;
}
const NO_FILTERS: Filters = { kind: "", status: "", owner: "", run: "", tenant: "" };

/** The dialog open over the list, if any. */
type Open =
  | { readonly type: "create" }
  | { readonly type: "details"; readonly key: Key }
  | { readonly type: "rotate"; readonly key: Key }
  | { readonly type: "revoke"; readonly key: Key }
  | { readonly type: "secret"; readonly key: Key; readonly secret: string; readonly verb: string };

/**
 * One action a key row offers. The list is the one place to add an action
 * when the API gains it (DESIGN "Key lifecycle": Suspend/Resume through
 * SuspendKey/ResumeKey, a grace period on RotateKey): a label, when it
 * applies, and the dialog it opens.
 */
interface RowAction {
  readonly label: string;
  readonly applies: (key: Key) => boolean;
  readonly open: (key: Key) => Open;
  readonly danger?: boolean;
}
const ROW_ACTIONS: readonly RowAction[] = [
  { label: "Details", applies: () => true, open: (key) => ({ type: "details", key }) },
  {
    label: "Rotate",
    applies: (key) => key.status !== "revoked",
    open: (key) => ({ type: "rotate", key }),
  },
  {
    label: "Revoke",
    applies: (key) => key.status !== "revoked",
    open: (key) => ({ type: "revoke", key }),
    danger: true,
  },
];

/** The key list: filters, paging, `Create key`, and each key's actions. */
export function KeysScreen({ client, info, onSessionEnded }: KeysScreenProps) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  /** Page tokens of the pages walked through; the last one is shown. */
  const [pages, setPages] = useState<string[]>([""]);
  const [keys, setKeys] = useState<Key[]>();
  const [next, setNext] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const [notice, setNotice] = useState("");
  const [open, setOpen] = useState<Open>();
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string>();
  const latest = useRef(0);

  const refused = (failure: unknown, show: (message: string) => void) => {
    const refusal = describeError(failure);
    if (refusal.endsSession) onSessionEnded(refusal.message);
    else show(refusal.message);
  };

  useEffect(() => {
    // Only the answer to the latest request is shown, however they arrive.
    const request = ++latest.current;
    setLoading(true);
    client
      .listKeys({ pageSize: PAGE_SIZE, pageToken: pages[pages.length - 1] ?? "", ...filters })
      .then(
        (page) => {
          if (request !== latest.current) return;
          setKeys(page.keys);
          setNext(page.nextPageToken);
          setError(undefined);
        },
        (failure: unknown) => {
          if (request === latest.current) refused(failure, setError);
        },
      )
      .finally(() => {
        if (request === latest.current) setLoading(false);
      });
  }, [client, filters, pages]);

  const refresh = () => setPages((walked) => [...walked]);
  const close = () => {
    setOpen(undefined);
    setActionError(undefined);
  };
  const act = async (run: () => Promise<void>) => {
    setBusy(true);
    setActionError(undefined);
    try {
      await run();
    } catch (failure) {
      refused(failure, setActionError);
    } finally {
      setBusy(false);
    }
  };

  const rotate = (key: Key) =>
    act(async () => {
      const rotated = await client.rotateKey({ id: key.id });
      setOpen({ type: "secret", key: rotated.key ?? key, secret: rotated.secret, verb: "rotated" });
      setActionError(undefined);
      setNotice(`Key “${keyLabel(key)}” rotated: its previous secret no longer works.`);
      refresh();
    });
  const revoke = (key: Key) =>
    act(async () => {
      await client.revokeKey({ id: key.id });
      close();
      setNotice(`Key “${keyLabel(key)}” revoked: every request with it is now refused.`);
      refresh();
    });

  const applyFilters = (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const value = (name: string) => String(form.get(name) ?? "").trim();
    setFilters({
      kind: value("kind"),
      status: value("status"),
      owner: value("owner"),
      run: value("run"),
      tenant: value("tenant"),
    });
    setPages([""]);
  };

  const caller = info.caller;
  return (
    <section aria-labelledby="keys-heading">
      <div class="heading-row">
        <h1 id="keys-heading">Keys</h1>
        {(caller?.mintableKinds.length ?? 0) > 0 && (
          <button type="button" class="primary" onClick={() => setOpen({ type: "create" })}>
            Create key
          </button>
        )}
      </div>
      <p class="notice" role="status">
        {notice}
      </p>

      <form class="filters" onSubmit={applyFilters} aria-label="Filter keys">
        <label>
          Kind
          <select name="kind">
            <option value="">any</option>
            {["live", "user", "agent", "worker"].map((kind) => (
              <option key={kind}>{kind}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status">
            <option value="">any</option>
            {["active", "revoked", "expired"].map((status) => (
              <option key={status}>{status}</option>
            ))}
          </select>
        </label>
        <label>
          Owner
          <input name="owner" autoComplete="off" />
        </label>
        <label>
          Run
          <input name="run" autoComplete="off" />
        </label>
        {caller?.managesAll && (
          <label>
            Tenant
            <input name="tenant" autoComplete="off" />
          </label>
        )}
        <button type="submit">Filter</button>
      </form>

      <nav class="pager" aria-label="Pages of keys">
        <button
          type="button"
          disabled={pages.length <= 1 || loading}
          onClick={() => setPages((walked) => walked.slice(0, -1))}
        >
          Previous page
        </button>
        <span class="page-label">
          Page {pages.length}
          {keys && !loading ? ` · ${keys.length} ${keys.length === 1 ? "key" : "keys"}` : ""}
        </span>
        <button
          type="button"
          disabled={!next || loading}
          onClick={() => setPages((walked) => [...walked, next])}
        >
          Next page
        </button>
      </nav>
      <ErrorText text={error} />

      <div class="table-wrap">
        <table class="keys" aria-labelledby="keys-heading" aria-busy={loading}>
          <colgroup>
            <col class="c-name" />
            <col class="c-lookup" />
            <col class="c-kind" />
            <col class="c-status" />
            <col class="c-scopes" />
            <col class="c-time" />
            <col class="c-time" />
            <col class="c-actions" />
          </colgroup>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Key</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">Scopes</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {keys === undefined && (
              <tr>
                <td colSpan={8}>{loading ? "Loading keys…" : "Keys could not be loaded."}</td>
              </tr>
            )}
            {keys?.length === 0 && (
              <tr>
                <td colSpan={8}>No keys match.</td>
              </tr>
            )}
            {keys?.map((key) => (
              <tr key={key.id}>
                <th scope="row">{key.name || <span class="hint">unnamed</span>}</th>
                <td class="mono wrap">{key.keyLookup}</td>
                <td>{key.kind}</td>
                <td>
                  <span class={`status ${key.status}`}>{key.status}</span>
                </td>
                <td class="mono wrap">{key.scopes.join(" ") || "—"}</td>
                <td>
                  <time dateTime={isoTime(key.expiresAt)}>
                    {key.expiresAt ? formatTime(key.expiresAt) : "never"}
                  </time>
                </td>
                <td>
                  <time dateTime={isoTime(key.lastUsedAt)}>
                    {key.lastUsedAt ? formatTime(key.lastUsedAt) : "never"}
                  </time>
                </td>
                <td class="actions">
                  {ROW_ACTIONS.filter((action) => action.applies(key)).map((action) => (
                    <button
                      key={action.label}
                      type="button"
                      class={action.danger ? "small danger-outline" : "small"}
                      onClick={() => {
                        setActionError(undefined);
                        setOpen(action.open(key));
                      }}
                    >
                      {action.label}
                      <span class="visually-hidden"> {keyLabel(key)}</span>
                    </button>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      {open?.type === "create" && (
        <CreateKeyDialog
          client={client}
          info={info}
          onClose={close}
          onSessionEnded={onSessionEnded}
          onCreated={(key, secret) => {
            setOpen({ type: "secret", key, secret, verb: "created" });
            setNotice(`Key “${keyLabel(key)}” created.`);
            setPages([""]);
          }}
        />
      )}
      {open?.type === "secret" && (
        <SecretDialog key_={open.key} secret={open.secret} verb={open.verb} onClose={close} />
      )}
      {open?.type === "details" && (
        <KeyDetails
          client={client}
          key_={open.key}
          onClose={close}
          onSessionEnded={onSessionEnded}
        />
      )}
      {open?.type === "rotate" && (
        <Confirm
          title={`Rotate “${keyLabel(open.key)}”?`}
          action="Rotate key"
          busy={busy}
          error={actionError}
          onClose={close}
          onConfirm={() => rotate(open.key)}
        >
          <p>
            Key <strong>{keyLabel(open.key)}</strong> (
            <span class="mono">{open.key.keyLookup}</span>) gets a new secret, shown once. Its
            current secret stops working at once.
          </p>
        </Confirm>
      )}
      {open?.type === "revoke" && (
        <Confirm
          title={`Revoke “${keyLabel(open.key)}”?`}
          action="Revoke key"
          danger
          busy={busy}
          error={actionError}
          onClose={close}
          onConfirm={() => revoke(open.key)}
        >
          <p>
            Key <strong>{keyLabel(open.key)}</strong> (
            <span class="mono">{open.key.keyLookup}</span>) will be refused on every request from
            now on (<span class="mono">key_revoked</span>). This cannot be undone.
          </p>
        </Confirm>
      )}
    </section>
  );
}

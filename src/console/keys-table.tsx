import type { Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { formatTime, isoTime, keyLabel } from "./format.js";

/** The dialog open over the list, if any. */
export type Open =
  | { readonly type: "create" }
  | { readonly type: "details"; readonly key: Key }
  | { readonly type: "rotate"; readonly key: Key }
  | { readonly type: "revoke"; readonly key: Key }
  | { readonly type: "suspend"; readonly key: Key }
  | { readonly type: "resume"; readonly key: Key }
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
    label: "Suspend",
    applies: (key) => key.status === "active",
    open: (key) => ({ type: "suspend", key }),
  },
  {
    label: "Resume",
    applies: (key) => key.status === "suspended",
    open: (key) => ({ type: "resume", key }),
  },
  {
    label: "Revoke",
    applies: (key) => key.status !== "revoked",
    open: (key) => ({ type: "revoke", key }),
    danger: true,
  },
];

/** Options for {@link KeysTable}. */
export interface KeysTableProps {
  /** The page of keys; undefined while the first page loads or when it failed. */
  readonly keys: readonly Key[] | undefined;
  readonly loading: boolean;
  /** A row action was chosen: open its dialog. */
  readonly onAction: (open: Open) => void;
}

/** One page of keys, a row each, with the actions each key offers. */
export function KeysTable({ keys, loading, onAction }: KeysTableProps) {
  return (
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
                    onClick={() => onAction(action.open(key))}
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
  );
}

import { useEffect, useState } from "preact/hooks";
import type { AuditEvent, Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { describeError, type KeyClient } from "./api.js";
import { Dialog, ErrorText } from "./dialog.js";
import { formatTime, isoTime, keyLabel } from "./format.js";
import { KeyUsage } from "./key-usage.js";

/** Options for {@link KeyDetails}. */
export interface KeyDetailsProps {
  readonly client: KeyClient;
  readonly key_: Key;
  readonly onSessionEnded: (message: string) => void;
  readonly onClose: () => void;
}

const AUDIT_PAGE = 20;

/**
 * Everything the API tells about one key, its use over the last day, and its
 * audit trail (newest first, paged).
 *
 * Long because it is markup: the key's fields and its audit trail, one row each.
 */
export function KeyDetails({ client, key_, onSessionEnded, onClose }: KeyDetailsProps) {
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [next, setNext] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const [includeReads, setIncludeReads] = useState(false);

  const load = async (pageToken: string) => {
    setLoading(true);
    try {
      const page = await client.listAuditEvents({
        keyId: key_.id,
        pageSize: AUDIT_PAGE,
        pageToken,
        includeReads,
      });
      setEvents((shown) => (pageToken ? [...shown, ...page.events] : page.events));
      setNext(page.nextPageToken);
      setError(undefined);
    } catch (failure) {
      const refusal = describeError(failure);
      if (refusal.endsSession) onSessionEnded(refusal.message);
      else setError(refusal.message);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load("");
  }, [key_.id, includeReads]);

  const binding = key_.binding;
  return (
    <Dialog title={`Key ${keyLabel(key_)}`} onClose={onClose} wide>
      <dl class="facts">
        <dt>Key</dt>
        <dd class="mono">{key_.keyLookup}</dd>
        <dt>Kind</dt>
        <dd>{key_.kind}</dd>
        <dt>Status</dt>
        <dd>
          <span class={`status ${key_.status}`}>{key_.status}</span>
        </dd>
        <dt>Tenant</dt>
        <dd>{key_.tenant || "—"}</dd>
        <dt>Owner</dt>
        <dd>{key_.owner || "—"}</dd>
        <dt>Scopes</dt>
        <dd class="mono">{key_.scopes.join(" ") || "none"}</dd>
        {binding && (
          <>
            <dt>Run</dt>
            <dd class="mono">
              {binding.experiment} / {binding.variation} / {binding.run}
            </dd>
          </>
        )}
        <dt>Created</dt>
        <dd>
          <time dateTime={isoTime(key_.createdAt)}>{formatTime(key_.createdAt)}</time>
        </dd>
        <dt>Expires</dt>
        <dd>{key_.expiresAt ? formatTime(key_.expiresAt) : "never"}</dd>
        {key_.previousSecretExpiresAt && (
          <>
            <dt>Previous secret</dt>
            <dd>works until {formatTime(key_.previousSecretExpiresAt)}</dd>
          </>
        )}
        <dt>Last used</dt>
        <dd>{key_.lastUsedAt ? formatTime(key_.lastUsedAt) : "never"}</dd>
        {key_.revokedAt && (
          <>
            <dt>Revoked</dt>
            <dd>{formatTime(key_.revokedAt)}</dd>
          </>
        )}
      </dl>

      <KeyUsage client={client} keyId={key_.id} onSessionEnded={onSessionEnded} />

      <h3 id="audit-heading">Audit log</h3>
      <label class="check">
        <input
          type="checkbox"
          checked={includeReads}
          onChange={(event) => setIncludeReads(event.currentTarget.checked)}
        />
        Include reads (GetKey, ListKeys)
      </label>
      <div class="table-wrap">
        <table class="audit" aria-labelledby="audit-heading" aria-busy={loading}>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Action</th>
              <th scope="col">Actor</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {events.map((event) => (
              <tr key={String(event.seq)}>
                <td>
                  <time dateTime={isoTime(event.time)}>{formatTime(event.time)}</time>
                </td>
                <td>{event.action}</td>
                <td class="mono wrap">{event.actor}</td>
                <td>{event.outcome === "ok" ? "ok" : `${event.outcome}: ${event.detail}`}</td>
              </tr>
            ))}
            {!loading && events.length === 0 && !error && (
              <tr>
                <td colSpan={4}>No recorded actions.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <ErrorText text={error} />
      <div class="buttons">
        {next && (
          <button type="button" disabled={loading} onClick={() => load(next)}>
            Show older
          </button>
        )}
        <button type="button" class="primary" onClick={onClose}>
          Close
        </button>
      </div>
    </Dialog>
  );
}

import { useEffect, useRef, useState } from "preact/hooks";
import type { GetServerInfoResponse, Key } from "../gen/keyward/admin/v1/admin_pb.js";
import { describeError, type KeyClient } from "./api.js";
import { CreateKeyDialog } from "./create-key.js";
import { Confirm, ErrorText } from "./dialog.js";
import { formatTime, keyLabel } from "./format.js";
import { KeyDetails } from "./key-details.js";
import { FilterForm, type Filters, NO_FILTERS } from "./keys-filters.js";
import { KeysTable, type Open } from "./keys-table.js";
import { RotateDialog } from "./rotate-dialog.js";
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

/**
 * The key list: filters, paging, `Create key`, and each key's actions.
 *
 * Long because it owns the list's state (filters, pages, the open dialog)
 * and renders each dialog from it; the form and the table are their own
 * components.
 */
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

  const rotate = (key: Key, graceSeconds: number) =>
    act(async () => {
      const rotated = await client.rotateKey({ id: key.id, graceSeconds });
      setOpen({ type: "secret", key: rotated.key ?? key, secret: rotated.secret, verb: "rotated" });
      setActionError(undefined);
      setNotice(
        graceSeconds > 0
          ? `Key “${keyLabel(key)}” rotated: its previous secret works until ${formatTime(rotated.key?.previousSecretExpiresAt)}.`
          : `Key “${keyLabel(key)}” rotated: its previous secret no longer works.`,
      );
      refresh();
    });
  const suspendOrResume = (key: Key, suspend: boolean) =>
    act(async () => {
      if (suspend) await client.suspendKey({ id: key.id });
      else await client.resumeKey({ id: key.id });
      close();
      setNotice(
        suspend
          ? `Key “${keyLabel(key)}” suspended: requests with it are refused until it is resumed.`
          : `Key “${keyLabel(key)}” resumed.`,
      );
      refresh();
    });
  const revoke = (key: Key) =>
    act(async () => {
      await client.revokeKey({ id: key.id });
      close();
      setNotice(`Key “${keyLabel(key)}” revoked: every request with it is now refused.`);
      refresh();
    });

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

      <FilterForm
        managesAll={caller?.managesAll ?? false}
        onApply={(chosen) => {
          setFilters(chosen);
          setPages([""]);
        }}
      />

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

      <KeysTable
        keys={keys}
        loading={loading}
        onAction={(chosen) => {
          setActionError(undefined);
          setOpen(chosen);
        }}
      />

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
        <RotateDialog
          key_={open.key}
          busy={busy}
          error={actionError}
          onClose={close}
          onRotate={(graceSeconds) => rotate(open.key, graceSeconds)}
        />
      )}
      {(open?.type === "suspend" || open?.type === "resume") && (
        <Confirm
          title={`${open.type === "suspend" ? "Suspend" : "Resume"} “${keyLabel(open.key)}”?`}
          action={open.type === "suspend" ? "Suspend key" : "Resume key"}
          busy={busy}
          error={actionError}
          onClose={close}
          onConfirm={() => suspendOrResume(open.key, open.type === "suspend")}
        >
          <p>
            Key <strong>{keyLabel(open.key)}</strong> (
            <span class="mono">{open.key.keyLookup}</span>){" "}
            {open.type === "suspend" ? (
              <>
                will be refused on every request (<span class="mono">key_disabled</span>) until it
                is resumed. Its secret stays the same.
              </>
            ) : (
              "works again from now on, with the same secret."
            )}
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

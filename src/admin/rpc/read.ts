import { MethodOptions_IdempotencyLevel, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { KEY_KINDS, type KeyKind } from "../../auth/identity.js";
import {
  type GetKeyUsageRequest,
  KeyService,
  type ListAuditEventsRequest,
  type ListKeysRequest,
} from "../../gen/keyward/admin/v1/admin_pb.js";
import type { AuditEntry } from "../../keys/audit.js";
import type { ListKeysFilter, PageCursor } from "../../keys/repository.js";
import { KEY_STATUSES } from "../../keys/rows.js";
import { keyToProto } from "../convert.js";
import {
  assertAdministrator,
  canSee,
  mintableKinds,
  type Principal,
  SCOPE_ADMIN,
  SCOPE_PROVISION,
} from "../principal.js";
import type { Handlers } from "./context.js";

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const DEFAULT_AUDIT_PAGE_SIZE = 50;
const MAX_AUDIT_PAGE_SIZE = 500;
const DEFAULT_USAGE_HOURS = 24;
const MAX_USAGE_HOURS = 24 * 90;
const HOUR_MS = 3_600_000;
const STATUSES: ReadonlySet<string> = new Set(KEY_STATUSES);
/** The calls that change nothing (declared NO_SIDE_EFFECTS in the proto): a key's reads. */
const READ_ACTIONS = KeyService.methods
  .filter((method) => method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS)
  .map((method) => method.name);

/** GetKey, ListKeys, ListAuditEvents and GetServerInfo: the calls that only read. */
export function readHandlers(h: Handlers) {
  const { options } = h;
  const { store, audit, audited } = options;
  return {
    getKey(request: { id: string }, context: HandlerContext) {
      return audited(context, request.id, (caller) => ({
        key: keyToProto(h.visibleKey(caller, request.id)),
      }));
    },

    getKeyUsage(request: GetKeyUsageRequest, context: HandlerContext) {
      return audited(context, request.id, (caller) => {
        // The same rule as GetKey: whoever may read the key may read its use.
        const key = h.visibleKey(caller, request.id);
        const hours = request.hours === 0 ? DEFAULT_USAGE_HOURS : request.hours;
        if (hours < 1 || hours > MAX_USAGE_HOURS)
          throw new ConnectError(`hours must be 1 to ${MAX_USAGE_HOURS}`, Code.InvalidArgument);
        const since = h.now() - (hours - 1) * HOUR_MS;
        return {
          usage: options.usage.series(key.id, since).map((hour) => ({
            hour: timestampFromMs(hour.hour),
            allowed: BigInt(hour.allowed),
            denied: Object.fromEntries(
              Object.entries(hour.denied).map(([code, n]) => [code, BigInt(n)]),
            ),
          })),
        };
      });
    },

    listKeys(request: ListKeysRequest, context: HandlerContext) {
      return audited(context, undefined, (caller) => {
        const filter = listFilter(caller, request);
        if (filter === undefined) return { keys: [], nextPageToken: "" };
        const size = pageSize(request.pageSize, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        const page = store.list(filter, size + 1, decodePageToken(request.pageToken));
        const keys = page.slice(0, size);
        const last = keys[keys.length - 1];
        return {
          keys: keys.filter((key) => canSee(caller, key)).map(keyToProto),
          nextPageToken: page.length > size && last ? encodeToken([last.createdAt, last.id]) : "",
        };
      });
    },

    listAuditEvents(request: ListAuditEventsRequest, context: HandlerContext) {
      return audited(context, undefined, (caller) => {
        if (!request.keyId) throw new ConnectError("key_id is required", Code.InvalidArgument);
        // Whoever may read the key may read its trail; anyone else gets GetKey's not_found.
        const key = h.visibleKey(caller, request.keyId);
        const size = pageSize(request.pageSize, DEFAULT_AUDIT_PAGE_SIZE, MAX_AUDIT_PAGE_SIZE);
        // Refused calls are recorded under whatever id the caller named, by
        // callers who may not see the key (another tenant probing an id):
        // only keys:admin reads those; others see the key's completed actions.
        const entries = audit.list(
          {
            keyId: key.id,
            ...(caller.superuser ? {} : { outcome: "ok" }),
            ...(request.includeReads ? {} : { excludeActions: READ_ACTIONS }),
            ...decodeAuditToken(request.pageToken),
          },
          size + 1,
        );
        const page = entries.slice(0, size);
        const last = page[page.length - 1];
        return {
          events: page.map(auditEventToProto),
          nextPageToken: entries.length > size && last ? encodeToken([last.seq]) : "",
        };
      });
    },

    getServerInfo(_request: unknown, context: HandlerContext) {
      return audited(context, undefined, (caller) => {
        assertAdministrator(caller, "manage keys");
        const { identity } = caller;
        const known = [...new Set([...options.knownScopes(), SCOPE_ADMIN, SCOPE_PROVISION])].sort();
        return {
          role: options.role ?? "single",
          knownScopes: known,
          caller: {
            actor: caller.actor,
            subject: identity.subject,
            tenant: identity.tenant,
            credentialKind: identity.kind,
            scopes: [...identity.scopes],
            managesAll: caller.superuser,
            tenantAdmin: caller.tenantAdmin,
            researcher: caller.researcher,
            provisioner: caller.provisioner,
            mintableKinds: [...mintableKinds(caller)],
            grantableScopes: caller.superuser
              ? known
              : known.filter((scope) => identity.scopes.includes(scope)),
          },
        };
      });
    },
  };
}

/** The repository filter for a caller's ListKeys; undefined when it may see none of what it asks for. */
function listFilter(principal: Principal, request: ListKeysRequest): ListKeysFilter | undefined {
  assertAdministrator(principal, "list keys");
  if (request.kind && !KEY_KINDS.includes(request.kind as KeyKind)) {
    throw new ConnectError(`kind must be one of ${KEY_KINDS.join(", ")}`, Code.InvalidArgument);
  }
  if (request.status && !STATUSES.has(request.status)) {
    throw new ConnectError(
      `status must be one of ${KEY_STATUSES.join(", ")}`,
      Code.InvalidArgument,
    );
  }
  const filter: { -readonly [K in keyof ListKeysFilter]: ListKeysFilter[K] } = {};
  if (request.tenant) filter.tenant = request.tenant;
  if (request.kind) filter.kind = request.kind as KeyKind;
  if (request.status) filter.status = request.status as ListKeysFilter["status"];
  if (request.owner) filter.owner = request.owner;
  if (request.run) filter.run = request.run;
  if (principal.superuser) return filter;
  // Narrow the caller's filter to what it may see; asking for more (another
  // tenant, owner or kind) matches nothing rather than being widened or
  // replaced. canSee() re-checks every row.
  const { identity } = principal;
  const asks = (field: "tenant" | "owner", own: string) => !filter[field] || filter[field] === own;
  const kindIn = (kinds: readonly KeyKind[]) => !filter.kind || kinds.includes(filter.kind);
  if (principal.tenantAdmin) {
    const kinds: KeyKind[] = ["live", "agent", "worker"];
    return asks("tenant", identity.tenant) && kindIn(kinds)
      ? { ...filter, tenant: identity.tenant, kinds }
      : undefined;
  }
  if (principal.researcher) {
    const kinds: KeyKind[] = ["user", "agent"];
    return asks("owner", identity.subject) && asks("tenant", identity.tenant) && kindIn(kinds)
      ? { ...filter, owner: identity.subject, tenant: identity.tenant, kinds }
      : undefined;
  }
  if (principal.provisioner) {
    return asks("tenant", identity.tenant) && kindIn(["worker"])
      ? { ...filter, tenant: identity.tenant, kind: "worker" }
      : undefined;
  }
  throw new ConnectError("the caller may not list keys", Code.PermissionDenied);
}

function pageSize(asked: number, fallback: number, max: number): number {
  return Math.min(asked > 0 ? asked : fallback, max);
}

function auditEventToProto(entry: AuditEntry) {
  return {
    seq: BigInt(entry.seq),
    time: timestampFromMs(entry.at),
    actor: entry.actor,
    action: entry.action,
    keyId: entry.keyId ?? "",
    outcome: entry.outcome,
    detail: entry.detail,
  };
}

/** A page token is a JSON array of where the page ended, base64url: opaque to callers. */
function encodeToken(values: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(values)).toString("base64url");
}

function decodeToken(token: string): unknown[] {
  try {
    const values = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(values)) return values;
  } catch {
    // fall through
  }
  throw new ConnectError("page_token is not one this server issued", Code.InvalidArgument);
}

/** An audit page token is the last seq shown; the next page starts below it. */
function decodeAuditToken(token: string): { before?: number } {
  if (!token) return {};
  const [seq] = decodeToken(token);
  if (typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0) return { before: seq };
  throw new ConnectError("page_token is not one this server issued", Code.InvalidArgument);
}

function decodePageToken(token: string): PageCursor | undefined {
  if (!token) return undefined;
  const [createdAt, id] = decodeToken(token);
  if (typeof createdAt === "number" && typeof id === "string" && /^[0-9a-f]{16}$/.test(id)) {
    return { createdAt, id };
  }
  throw new ConnectError("page_token is not one this server issued", Code.InvalidArgument);
}

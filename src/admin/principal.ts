import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { KeyRecord } from "../keys/store.js";
import type { Identity, KeyKind } from "../pipeline/identity.js";

/** Scope that may do everything, including granting any scope. */
export const SCOPE_ADMIN = "keys:admin";
/** Scope that may mint worker keys bound to a run (and end runs). */
export const SCOPE_PROVISION = "keys:provision";

/**
 * Who is calling the admin API and what that lets them do (DESIGN "Admin
 * API", who may do what). Derived once per call from the verified identity.
 */
export interface Principal {
  /** For the audit trail and idempotency: `key:<id>` or `jwt:<issuer>#<subject>`. Never a secret. */
  readonly actor: string;
  readonly identity: Identity;
  /** Holds keys:admin: manages every key. */
  readonly superuser: boolean;
  /** Admin-portal session: manages its own tenant's keys. */
  readonly tenantAdmin: boolean;
  /** Auth0 researcher token: its own user (and agent) keys. */
  readonly researcher: boolean;
  /** Holds keys:provision: mints worker keys bound to a run. */
  readonly provisioner: boolean;
}

/** Where the authentication interceptor leaves the caller for the handlers. */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "keyward admin principal",
});

export function principalOf(identity: Identity): Principal {
  const jwt = identity.kind === "jwt";
  return {
    // Subjects are unique per issuer only, so the issuer is part of the actor.
    actor: jwt ? `jwt:${identity.issuer ?? ""}#${identity.subject}` : `key:${identity.keyId}`,
    identity,
    superuser: identity.scopes.includes(SCOPE_ADMIN),
    // A tenant administrator without a tenant would administer nothing.
    tenantAdmin: jwt && identity.role === "admin" && identity.tenant !== "",
    researcher: jwt && identity.role !== "admin",
    provisioner: identity.scopes.includes(SCOPE_PROVISION),
  };
}

/** Kinds a researcher mints for itself: user keys, and agent keys for its runners (seed 000). */
const RESEARCHER_KINDS: readonly KeyKind[] = ["user", "agent"];
/** Kinds a tenant administrator mints: Developer API keys and agent keys, never someone's user key. */
const TENANT_ADMIN_KINDS: readonly KeyKind[] = ["live", "agent"];

/**
 * Whether the principal may see (and so manage) a key. A key it may not see
 * is answered exactly like a key that does not exist (404), so that ids of
 * other tenants cannot be probed.
 */
export function canSee(principal: Principal, key: KeyRecord): boolean {
  if (principal.superuser) return true;
  const { identity } = principal;
  if (principal.tenantAdmin && key.tenant === identity.tenant && key.kind !== "user") return true;
  if (
    principal.researcher &&
    RESEARCHER_KINDS.includes(key.kind) &&
    key.owner === identity.subject
  ) {
    return true;
  }
  if (principal.provisioner && key.kind === "worker" && key.tenant === identity.tenant) return true;
  return false;
}

/** The kinds a principal may mint; empty when it may mint nothing. */
export function mintableKinds(principal: Principal): readonly KeyKind[] {
  if (principal.superuser) return ["live", "user", "agent", "worker"];
  const kinds = new Set<KeyKind>();
  if (principal.tenantAdmin) for (const kind of TENANT_ADMIN_KINDS) kinds.add(kind);
  if (principal.researcher) for (const kind of RESEARCHER_KINDS) kinds.add(kind);
  if (principal.provisioner) kinds.add("worker");
  return [...kinds];
}

/**
 * Nobody grants a scope they do not hold, except keys:admin. Throws
 * permission_denied naming the first scope out of reach.
 */
export function assertGrantable(principal: Principal, scopes: readonly string[]): void {
  if (principal.superuser) return;
  const beyond = scopes.find((scope) => !principal.identity.scopes.includes(scope));
  if (beyond !== undefined) {
    throw new ConnectError(
      `cannot grant scope "${beyond}": the caller does not hold it`,
      Code.PermissionDenied,
    );
  }
}

/** True when the principal holds any admin capability at all. */
export function mayAdminister(principal: Principal): boolean {
  return (
    principal.superuser || principal.tenantAdmin || principal.researcher || principal.provisioner
  );
}

/** The principal the authentication interceptor attached; its absence is a wiring bug, so fail closed. */
export function requirePrincipal(value: Principal | undefined): Principal {
  if (!value) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return value;
}

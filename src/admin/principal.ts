import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { Identity, KeyKind } from "../auth/identity.js";
import type { KeyRecord } from "../keys/rows.js";

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
  /** Bound to a run (a worker key): may do nothing on the admin API, whatever its scopes. */
  readonly runBound: boolean;
}

/** Where the authentication interceptor leaves the caller for the handlers. */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "keyward admin principal",
});

export function principalOf(identity: Identity): Principal {
  const jwt = identity.kind === "jwt";
  // A credential bound to a run lives on a provisioned machine for that run
  // only. Worker keys never hold keys:* scopes; one that does (written by an
  // older version, or by hand) still gets no admin capability at all.
  const runBound = identity.binding !== undefined;
  const admits = !runBound;
  return {
    // Subjects are unique per issuer only, so the issuer is part of the actor.
    actor: jwt ? `jwt:${identity.issuer ?? ""}#${identity.subject}` : `key:${identity.keyId}`,
    identity,
    superuser: admits && identity.scopes.includes(SCOPE_ADMIN),
    // A tenant administrator without a tenant would administer nothing.
    tenantAdmin: admits && jwt && identity.role === "admin" && identity.tenant !== "",
    researcher: admits && jwt && identity.role !== "admin",
    provisioner: admits && identity.scopes.includes(SCOPE_PROVISION),
    runBound,
  };
}

/** Kinds a researcher mints for itself: user keys, and agent keys for its runners (seed 000). */
const RESEARCHER_KINDS: readonly KeyKind[] = ["user", "agent"];
/** Kinds a tenant administrator mints: Developer API keys and agent keys, never someone's user key. */
const TENANT_ADMIN_KINDS: readonly KeyKind[] = ["live", "agent"];

/**
 * Whether the principal may see a key (GetKey, ListKeys). A key it may not
 * see is answered exactly like a key that does not exist (404), so that ids
 * of other tenants cannot be probed. Managing a key it sees takes more: see
 * {@link mintRefusal}.
 */
export function canSee(principal: Principal, key: KeyRecord): boolean {
  if (principal.superuser) return true;
  const { identity } = principal;
  if (principal.tenantAdmin && key.tenant === identity.tenant && key.kind !== "user") return true;
  // A subject is unique within its issuer only, and a key's owner records no
  // issuer: an owner match counts inside the researcher's own tenant only
  // (researchers' keys are minted in their token's tenant, "" without one).
  if (
    principal.researcher &&
    RESEARCHER_KINDS.includes(key.kind) &&
    key.owner === identity.subject &&
    key.tenant === identity.tenant
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

/** What the minting rules look at in a key, whether it exists yet or not. */
export interface MintTarget {
  readonly kind: KeyKind;
  readonly tenant: string;
  readonly scopes: readonly string[];
  /**
   * Checked for calls that hand out a secret (create, rotate): the secret
   * acts as its owner upstream (x-auth-subject). Left out for calls that
   * only destroy one (revoke, end a run).
   */
  readonly owner?: string;
}

/**
 * The minting rules, in one place: why the principal could not mint a key of
 * this kind, tenant, scopes (and owner, when given) right now, or undefined
 * when it could. Creating uses it, and so does every call that hands out or
 * destroys a secret (rotate, revoke, end a run): holding a key's id is no
 * authority over it. The reason names the field at fault (permission_denied).
 */
export function mintRefusal(principal: Principal, key: MintTarget): string | undefined {
  if (principal.superuser) return undefined;
  const { identity } = principal;
  if (!mintableKinds(principal).includes(key.kind)) {
    return `kind: the caller may not mint ${key.kind} keys`;
  }
  if (key.tenant !== identity.tenant)
    return "tenant: the caller may not mint keys for another tenant";
  const beyond = key.scopes.find((scope) => !identity.scopes.includes(scope));
  if (beyond !== undefined) {
    return `scopes: cannot grant scope "${beyond}": the caller does not hold it`;
  }
  // Only keys:admin names an arbitrary owner. A key without one announces
  // its own id as subject, which impersonates nobody.
  if (key.owner !== undefined && key.owner !== "" && key.owner !== identity.subject) {
    return "owner: only keys:admin may name another owner; the caller mints keys for itself only";
  }
  return undefined;
}

/** Throws permission_denied with {@link mintRefusal}'s reason, if any. */
export function assertCouldMint(principal: Principal, key: MintTarget): void {
  const refusal = mintRefusal(principal, key);
  if (refusal !== undefined) throw new ConnectError(refusal, Code.PermissionDenied);
}

/**
 * Throws permission_denied unless the principal holds some admin capability
 * at all; `doing` completes "the caller may not …".
 */
export function assertAdministrator(principal: Principal, doing: string): void {
  if (principal.runBound) {
    throw new ConnectError(
      "a credential bound to a run cannot administer keys",
      Code.PermissionDenied,
    );
  }
  if (
    !principal.superuser &&
    !principal.tenantAdmin &&
    !principal.researcher &&
    !principal.provisioner
  ) {
    throw new ConnectError(`the caller may not ${doing}`, Code.PermissionDenied);
  }
}

/** The principal the authentication interceptor attached; its absence is a wiring bug, so fail closed. */
export function requirePrincipal(value: Principal | undefined): Principal {
  if (!value) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return value;
}

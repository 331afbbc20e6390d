import type { Registry } from "prom-client";
import type { Decision } from "../auth/decision.js";
import { TalliedCounter } from "./tally.js";

/** The tenant label of every tenant past the cap. */
export const OTHER_TENANT = "other";
/** The tenant label of a decision that names no tenant (no credential, a key without one). */
export const NO_TENANT = "none";

/**
 * `keyward_tenant_decisions_total{tenant,outcome}` with a cap on distinct
 * tenants: the first `maxTenants` tenants this process sees get their own
 * label value, every later one is counted as `other`, so a tenant per
 * customer can never blow up the number of series. The cap holds per
 * process (each Check worker admits its own first tenants).
 */
export class TenantDecisions {
  readonly #counter: TalliedCounter<"tenant" | "outcome">;
  readonly #tenants = new Set<string>();

  constructor(
    registry: Registry,
    private readonly maxTenants: number,
  ) {
    this.#counter = new TalliedCounter(
      registry,
      "keyward_tenant_decisions_total",
      `Authorization decisions by tenant and outcome; tenants past the first ${maxTenants} are counted as "${OTHER_TENANT}".`,
      ["tenant", "outcome"],
    );
  }

  /** Counts one decision: a map lookup and an add once its series exists. */
  count(decision: Decision): void {
    const outcome = decision.allow ? "allow" : "deny";
    const tenant = this.#label(decision.identity?.tenant);
    const series =
      this.#counter.find(outcome, tenant, "") ??
      this.#counter.add(outcome, tenant, "", { tenant, outcome });
    series.count += 1;
  }

  #label(tenant: string | undefined): string {
    if (!tenant) return NO_TENANT;
    if (this.#tenants.has(tenant)) return tenant;
    if (this.#tenants.size >= this.maxTenants) return OTHER_TENANT;
    this.#tenants.add(tenant);
    return tenant;
  }
}

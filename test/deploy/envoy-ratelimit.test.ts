import { describe, expect, it } from "vitest";
import { checkEnvoyMessage } from "./envoy-api.js";
import { readYamlDocuments, type Tree } from "./manifests.js";

const FILE = "deploy/envoy/envoy-ratelimit.yaml";
const NAMESPACE = "envoy.filters.http.ext_authz";

describe(FILE, () => {
  const [bootstrap] = readYamlDocuments(FILE) as [Tree];
  const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  const filters: Tree[] = hcm.http_filters;
  const host = hcm.route_config.virtual_hosts[0];

  it("is a valid Envoy v3 bootstrap, field by field, against the canonical protos", () => {
    expect(checkEnvoyMessage("envoy.config.bootstrap.v3.Bootstrap", bootstrap)).toEqual([]);
    // And the check can fail: a misspelt action field is caught.
    const broken = structuredClone(bootstrap);
    const action =
      broken.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config
        .virtual_hosts[0].rate_limits[0].actions[0].metadata;
    action.descriptor_kee = action.descriptor_key;
    delete action.descriptor_key;
    expect(checkEnvoyMessage("envoy.config.bootstrap.v3.Bootstrap", broken).join()).toMatch(
      /descriptor_kee/,
    );
  });

  it("asks keyward first, then the rate-limit service, then routes", () => {
    expect(filters.map((f) => f.name)).toEqual([
      NAMESPACE,
      "envoy.filters.http.ratelimit",
      "envoy.filters.http.router",
    ]);
    const ratelimit = filters[1]?.typed_config;
    expect(ratelimit["@type"]).toBe(
      "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
    );
    expect(ratelimit.domain).toBe("keyward");
    expect(ratelimit.rate_limit_service.grpc_service.envoy_grpc.cluster_name).toBe("ratelimit");
    expect(filters[0]?.typed_config.failure_mode_allow).toBe(false);
  });

  it("builds its descriptors from the dynamic metadata keyward's Check answers with", () => {
    // The names keyward writes: src/check/response.ts metadataOf (key_id, tenant, meta).
    const paths = host.rate_limits.flatMap((limit: Tree) =>
      limit.actions.map((action: Tree) => {
        expect(action.metadata.metadata_key.key).toBe(NAMESPACE);
        expect(action.metadata.source).toBe("DYNAMIC");
        return [
          action.metadata.descriptor_key,
          action.metadata.metadata_key.path.map((p: Tree) => p.key),
        ];
      }),
    );
    expect(paths).toEqual([
      ["tenant", ["tenant"]],
      ["tenant", ["tenant"]],
      ["plan", ["meta", "plan"]],
      ["key_id", ["key_id"]],
    ]);
  });

  it("ships a rate-limit service configuration for the same domain and descriptor keys", () => {
    const [config] = readYamlDocuments("deploy/envoy/ratelimit-config.yaml") as [Tree];
    expect(config.domain).toBe("keyward");
    expect(config.descriptors.map((d: Tree) => d.key)).toEqual(["tenant", "key_id"]);
    expect(config.descriptors[0].descriptors.map((d: Tree) => d.key)).toEqual(["plan", "plan"]);
  });
});

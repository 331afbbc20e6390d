import { describe, expect, it } from "vitest";
import { AUTHORIZATION_SERVICE } from "../../src/check/server.js";
import { DENY_BODY_HEADER } from "../../src/http/forward-auth-response.js";
import { FORWARD_AUTH_PATH } from "../../src/http/forward-auth-view.js";
import { loadPolicyFile } from "../../src/policy/policy.js";
import { checkEnvoyMessage, typeUrls } from "./envoy-api.js";
import {
  IDENTITY_HEADERS,
  listMatcherMatches,
  PORTS,
  policyScopes,
  readYamlDocuments,
  type Tree,
} from "./manifests.js";

const EXT_AUTHZ = "envoy.filters.http.ext_authz";
const TYPE = {
  extAuthz: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
  perRoute: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
  hcm: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
  router: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
  http2: "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
};

/** The pieces of a bootstrap the assertions look at. */
function parts(file: string) {
  const [bootstrap] = readYamlDocuments(file) as [Tree];
  const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0];
  const filters: Tree[] = hcm.typed_config.http_filters;
  const routes: Tree[] = hcm.typed_config.route_config.virtual_hosts.flatMap(
    (host: Tree) => host.routes,
  );
  const cluster = (name: string): Tree =>
    bootstrap.static_resources.clusters.find((c: Tree) => c.name === name);
  const portOf = (name: string): number =>
    cluster(name).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
      .port_value;
  const extAuthz = filters.find((f) => f.name === EXT_AUTHZ)?.typed_config;
  return { bootstrap, hcm, filters, routes, cluster, portOf, extAuthz };
}

describe.each(["deploy/envoy/envoy.yaml", "deploy/envoy/envoy-http.yaml"])("%s", (file) => {
  const { bootstrap, hcm, filters, routes } = parts(file);

  it("is a valid Envoy v3 bootstrap, field by field, with no deprecated field", () => {
    expect(checkEnvoyMessage("envoy.config.bootstrap.v3.Bootstrap", bootstrap)).toEqual([]);
  });

  it("names its typed configs with type.googleapis.com/ URLs of the v3 API", () => {
    const urls = typeUrls(bootstrap);
    for (const url of urls)
      expect(url).toMatch(/^type\.googleapis\.com\/envoy\.[a-z0-9_.]+\.v3\.\w+$/);
    expect(urls).toEqual(
      expect.arrayContaining([TYPE.hcm, TYPE.extAuthz, TYPE.router, TYPE.perRoute]),
    );
    expect(hcm.name).toBe("envoy.filters.network.http_connection_manager");
  });

  it("runs ext_authz before the router, and fails closed with 503", () => {
    expect(filters.map((f) => f.name)).toEqual([EXT_AUTHZ, "envoy.filters.http.router"]);
    const extAuthz = filters[0].typed_config;
    expect(extAuthz["@type"]).toBe(TYPE.extAuthz);
    expect(extAuthz.failure_mode_allow).toBe(false);
    expect(extAuthz.status_on_error).toEqual({ code: "ServiceUnavailable" });
  });

  it("exempts only the health route from ext_authz, per route", () => {
    const exempt = routes.filter((r) => r.typed_per_filter_config?.[EXT_AUTHZ]?.disabled === true);
    expect(exempt.map((r) => r.match)).toEqual([{ path: "/healthz" }]);
    for (const route of routes) {
      for (const [name, config] of Object.entries<Tree>(route.typed_per_filter_config ?? {})) {
        expect(name).toBe(EXT_AUTHZ);
        expect(config["@type"]).toBe(TYPE.perRoute);
      }
    }
  });
});

describe("deploy/envoy/envoy.yaml (gRPC Check)", () => {
  const { extAuthz, routes, cluster, portOf } = parts("deploy/envoy/envoy.yaml");

  it("calls keyward's Check port over HTTP/2 with the v3 transport and a timeout", () => {
    expect(extAuthz.transport_api_version).toBe("V3");
    expect(extAuthz.grpc_service.timeout).toMatch(/^\d+(\.\d+)?s$/);
    const name = extAuthz.grpc_service.envoy_grpc.cluster_name;
    expect(portOf(name)).toBe(PORTS.check);
    const options =
      cluster(name).typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
      ];
    expect(options["@type"]).toBe(TYPE.http2);
    expect(options.explicit_http_config).toHaveProperty("http2_protocol_options");
  });

  it("health-checks keyward with grpc.health.v1 on the Authorization service", () => {
    const name = extAuthz.grpc_service.envoy_grpc.cluster_name;
    expect(AUTHORIZATION_SERVICE).toBe("envoy.service.auth.v3.Authorization");
    expect(cluster(name).health_checks[0].grpc_health_check.service_name).toBe(
      AUTHORIZATION_SERVICE,
    );
  });

  // Per-route scopes override keyward's policy file, so they must say what
  // the policy says for the same route.
  const scoped = routes.filter(
    (r) => r.typed_per_filter_config?.[EXT_AUTHZ]?.check_settings !== undefined,
  );

  it("sets required_scopes on Developer API routes", () => {
    expect(scoped.length).toBeGreaterThanOrEqual(5);
    for (const route of scoped) {
      const extensions = route.typed_per_filter_config[EXT_AUTHZ].check_settings.context_extensions;
      expect(Object.keys(extensions)).toEqual(["required_scopes"]);
    }
  });

  it.each(
    scoped.map((route) => {
      const methods = (route.match.headers ?? [])
        .filter((h: Tree) => h.name === ":method")
        .map((h: Tree) => h.string_match.exact);
      const template: string =
        route.match.path ?? route.match.path_match_policy.typed_config.path_template;
      const scopes: string =
        route.typed_per_filter_config[EXT_AUTHZ].check_settings.context_extensions.required_scopes;
      return [`${methods.join(",")} ${template}`, methods, template, scopes] as const;
    }),
  )(
    "%s: scopes exist in deploy/policy.yaml and agree with its rule",
    (_name, methods, template, scopes) => {
      const vocabulary = policyScopes();
      const list = scopes.split(" ").filter(Boolean);
      expect(list.length).toBeGreaterThan(0);
      for (const scope of list) expect(vocabulary, scope).toContain(scope);
      expect(methods).toHaveLength(1);
      const policy = loadPolicyFile("deploy/policy.yaml");
      const samplePath = template.replace(/\{(\w+)\}/g, "sample_$1");
      // The route's kinds: stay the policy's (context_extensions set scopes only).
      expect(policy.requirementFor(methods[0], samplePath)).toEqual({
        type: "scopes",
        scopes: list,
        kinds: ["live"],
      });
    },
  );
});

describe("deploy/envoy/envoy-http.yaml (forward-auth http_service)", () => {
  const { extAuthz, portOf, cluster } = parts("deploy/envoy/envoy-http.yaml");
  const service = extAuthz.http_service;

  it("calls keyward's forward-auth path on the HTTP port", () => {
    expect(service.path_prefix).toBe(FORWARD_AUTH_PATH);
    expect(new URL(service.server_uri.uri).port).toBe(String(PORTS.http));
    expect(portOf(service.server_uri.cluster)).toBe(PORTS.http);
    expect(service.server_uri.timeout).toMatch(/^\d+(\.\d+)?s$/);
    expect(cluster(service.server_uri.cluster).health_checks[0].http_health_check.path).toBe(
      "/readyz",
    );
  });

  it("sends keyward the credential and the client's x-auth-* headers", () => {
    expect(listMatcherMatches(extAuthz.allowed_headers, "authorization")).toBe(true);
    expect(listMatcherMatches(extAuthz.allowed_headers, "x-auth-role")).toBe(true);
    expect(listMatcherMatches(extAuthz.allowed_headers, "cookie")).toBe(false);
  });

  it("copies exactly keyward's identity headers upstream", () => {
    const upstream = service.authorization_response.allowed_upstream_headers;
    for (const name of IDENTITY_HEADERS)
      expect(listMatcherMatches(upstream, name), name).toBe(true);
    for (const name of [DENY_BODY_HEADER, "x-auth-role", "cache-control", "content-type"]) {
      expect(listMatcherMatches(upstream, name), name).toBe(false);
    }
  });

  it("passes keyward's deny headers to the client", () => {
    const client = service.authorization_response.allowed_client_headers;
    for (const name of ["www-authenticate", "content-type"]) {
      expect(listMatcherMatches(client, name), name).toBe(true);
    }
    for (const name of IDENTITY_HEADERS) expect(listMatcherMatches(client, name), name).toBe(false);
  });
});

import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));

/**
 * Builds the key console into dist/console/, served by the admin port under
 * /console/ (src/admin/console.ts). No asset is inlined (the CSP allows no
 * data: URL or inline script) and every built asset is named by its content
 * hash, so the server may mark them immutable.
 */
export default defineConfig({
  root: here,
  base: "/console/",
  publicDir: false,
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../../dist/console/", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
  },
});

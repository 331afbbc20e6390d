// Preloaded with `node --import` (through NODE_OPTIONS) into the keyward
// processes a test spawns, when KEYWARD_TEST_MODULE_LOG names a folder:
// every module node's ES module loader loads (keyward's own dist files and
// each package's entry) is appended, as a file: URL, to
// <folder>/<KEYWARD_ROLE>.txt. It watches loading from outside keyward's
// code, so a test of what a role loads does not rest on keyward's own
// account of it (its "keyward started" line).
import { register } from "node:module";

const folder = process.env.KEYWARD_TEST_MODULE_LOG;
if (folder) {
  register(new URL("./module-trace-hooks.mjs", import.meta.url), {
    data: { file: `${folder}/${process.env.KEYWARD_ROLE ?? "keyward"}.txt` },
  });
}

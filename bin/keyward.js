#!/usr/bin/env -S node --max-old-space-size=96
// The `keyward` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the package's prepare script).
//
// Run as a command (`keyward serve`, `npx keyward serve`, `npm start`), node
// gets the image's heap cap from the line above: V8 sizes its heap when it
// starts, so the cap cannot be set from here, and without it Check cost
// 7–25 % more CPU (bench/NOTES.md, eighth round). It is the single and
// primary roles' setting (ROLE_NODE_OPTIONS in src/lib/heap-tuning.ts;
// test/lib/heap-tuning.test.ts keeps the two equal). On node's command line
// it overrides NODE_OPTIONS: for a larger heap, run
// `node --max-old-space-size=N bin/keyward.js serve`, as the image does with
// its own NODE_OPTIONS.
//
// V8's heap growing percent is applied here, before the server's modules
// load, so that every way of starting keyward runs with it.
import { tuneHeap } from "../dist/lib/heap-tuning.js";

tuneHeap();
const { main } = await import("../dist/cli/main.js");

const code = await main(process.argv);
if (code !== 0) process.exit(code);

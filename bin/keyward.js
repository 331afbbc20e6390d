#!/usr/bin/env -S node --no-memory-reducer
// The `keyward` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the package's prepare script).
//
// The #! line starts node with keyward's one node flag (NODE_FLAGS in
// src/lib/heap-tuning.ts: V8's memory reducer off), so `keyward serve` and
// `npx keyward serve` get it as `npm start` and the image's ENTRYPOINT do.
// V8's heap tuning is applied here, before the server's modules load, so that
// every way of starting keyward runs with it.
import { tuneHeap } from "../dist/lib/heap-tuning.js";

tuneHeap();
const { main } = await import("../dist/cli/main.js");

const code = await main(process.argv);
if (code !== 0) process.exit(code);

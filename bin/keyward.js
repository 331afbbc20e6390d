#!/usr/bin/env node
// The `keyward` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the package's prepare script).
//
// V8's heap tuning is applied here, before the server's modules load, so that
// every way of starting keyward (`keyward serve`, `npx keyward serve`,
// `npm start`, the image's ENTRYPOINT) runs with it; the flags live in
// src/lib/heap-tuning.ts and nowhere else.
import { tuneHeap } from "../dist/lib/heap-tuning.js";

tuneHeap();
const { main } = await import("../dist/cli/main.js");

const code = await main(process.argv);
if (code !== 0) process.exit(code);

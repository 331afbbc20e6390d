#!/usr/bin/env node
// The `keyward` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the package's prepare script).
import { main } from "../dist/cli/main.js";

const code = await main(process.argv);
if (code !== 0) process.exit(code);

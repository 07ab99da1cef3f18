#!/usr/bin/env node
// wsbox-js-build: bundle a JS guest with the SDK and make it a component.
//
//   wsbox-js-build ENTRY.js NAME [--backend starlingmonkey|quickjs] [--wit DIR]
//
// Writes dist/NAME.wasm in the current directory (the example's folder).
// The tools come from that folder's node_modules, at the versions its
// package-lock.json pins: rolldown bundles ENTRY and its imports (this SDK
// included) into one ES module, leaving the component's own imports
// (`wsbox:*`, `wasi:*`) to the componentizer; then
// - starlingmonkey (default): @bytecodealliance/componentize-js, with
//   wasi:http and the fetch event disabled (the host links no wasi:http);
// - quickjs: componentize-qjs with its synchronous runtime (the host
//   refuses component-model async), built against wsbox:websocket@0.1.0,
//   which the host still serves: componentize-qjs 0.4.5 cannot build
//   against 0.1.1 (see README.md), so topics and events are unavailable.

import { mkdir, readFile, writeFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const sdkDir = dirname(fileURLToPath(import.meta.url));

function usage(message) {
  console.error(`wsbox-js-build: ${message}`);
  console.error("usage: wsbox-js-build ENTRY.js NAME [--backend starlingmonkey|quickjs] [--wit DIR]");
  process.exit(2);
}

const positional = [];
let backend = "starlingmonkey";
let wit = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--backend") backend = args[++i];
  else if (args[i] === "--wit") wit = args[++i];
  else if (args[i].startsWith("--")) usage(`unknown option ${args[i]}`);
  else positional.push(args[i]);
}
if (positional.length !== 2) usage("ENTRY and NAME are required");
if (!["starlingmonkey", "quickjs"].includes(backend)) usage(`unknown backend ${backend}`);
const [entry, name] = positional;

// The WIT of the repository this SDK lives in, unless told otherwise.
wit ??= backend === "quickjs" ? join(sdkDir, "wit-0.1.0") : join(sdkDir, "..", "..", "wit");
try {
  await stat(wit);
} catch {
  usage(`no WIT at ${wit}: pass --wit DIR`);
}

// Tools resolve from the example's folder (its node_modules), not from this
// SDK, which npm links there from the repository.
async function tool(pkg) {
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    const root = join(dir, "node_modules", pkg);
    let manifest = null;
    try {
      manifest = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
    } catch {
      // not here: look further up
    }
    if (manifest) {
      const dot = manifest.exports?.["."] ?? manifest.exports;
      const main =
        (typeof dot === "string" ? dot : (dot?.import ?? dot?.default ?? dot?.require)) ?? manifest.main ?? "index.js";
      return import(pathToFileURL(join(root, main)).href);
    }
    if (dirname(dir) === dir) usage(`${pkg} is not installed here: run \`npm ci\` first`);
  }
}

const outDir = resolve("dist");
const buildDir = join(outDir, `.${name}`);
await mkdir(buildDir, { recursive: true });
const bundlePath = join(buildDir, `${name}.js`);
const out = join(outDir, `${name}.wasm`);

// For QuickJS: the 0.1.0 interfaces, and a module that says why topics and
// events are missing in place of the WASI ones 0.1.0 does not import.
const quickjsAliases = {
  "wsbox:websocket/websocket@0.1.2": "wsbox:websocket/websocket@0.1.0",
  "wsbox:websocket/log@0.1.2": "wsbox:websocket/log@0.1.0",
  "wasi:io/poll@0.2.12": join(sdkDir, "quickjs-unavailable.js"),
  "wasi:clocks/monotonic-clock@0.2.12": join(sdkDir, "quickjs-unavailable.js"),
};

const { rolldown } = await tool("rolldown");
const bundle = await rolldown({
  input: resolve(entry),
  platform: "neutral",
  logLevel: "warn",
  plugins: [
    {
      name: "wsbox-component-imports",
      resolveId(source) {
        if (backend === "quickjs" && source in quickjsAliases) {
          const target = quickjsAliases[source];
          return target.startsWith("/") ? target : { id: target, external: true };
        }
        if (/^(wsbox|wasi):/.test(source)) return { id: source, external: true };
        return null;
      },
    },
  ],
});
await bundle.write({ file: bundlePath, format: "esm" });
await bundle.close();

const started = Date.now();
let component;
if (backend === "starlingmonkey") {
  const { componentize } = await tool("@bytecodealliance/componentize-js");
  ({ component } = await componentize({
    sourcePath: bundlePath,
    witPath: resolve(wit),
    worldName: "handler",
    disableFeatures: ["http", "fetch-event"],
  }));
} else {
  const { default: qjs } = await tool("componentize-qjs");
  ({ component } = await qjs.componentize({
    witPath: resolve(wit),
    jsSource: await readFile(bundlePath, "utf8"),
    jsPath: bundlePath,
    world: "handler",
    sync: true,
  }));
}
await writeFile(out, component);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`wrote ${out} (${(component.length / 1e6).toFixed(1)} MB, ${backend}, ${seconds} s)`);

// Validates Prometheus Operator custom resources, read as a JSON array on stdin, against
// the schemas of the pinned @kubernetes-models/prometheus-operator (generated from the
// operator's API types, as its CRDs are). Prints a JSON array: one {kind, name, errors}
// per object, errors empty when valid. Used by tests/test_kubernetes.py.
//
// Two checks, because the package's JSON-schema validators accept unknown fields (the API
// server rejects them: kubectl's default strict field validation):
//  1. the package's validate(): types, patterns (durations), enums, required fields;
//  2. the TypeScript compiler over the same models' type definitions: an unknown or
//     misspelt field in an object literal is an error ("excess property").
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const PKG = "@kubernetes-models/prometheus-operator/monitoring.coreos.com";
const KINDS = {
  "monitoring.coreos.com/v1/PrometheusRule": "v1/PrometheusRule",
  "monitoring.coreos.com/v1/ServiceMonitor": "v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PodMonitor": "v1/PodMonitor",
  "monitoring.coreos.com/v1alpha1/AlertmanagerConfig": "v1alpha1/AlertmanagerConfig",
};
const ROUTE = "v1alpha1/Route";

const objects = JSON.parse(fs.readFileSync(0, "utf8"));
const results = objects.map((o) => ({ kind: o.kind, name: o.metadata?.name ?? "", errors: [] }));

// Nested routes of an AlertmanagerConfig are free-form JSON in the schema: check each as a Route.
function subRoutes(route, where) {
  const found = [];
  (route?.routes ?? []).forEach((r, i) => {
    const at = `${where}.routes[${i}]`;
    found.push([at, r], ...subRoutes(r, at));
  });
  return found;
}

async function modelFor(module) {
  const mod = await import(`${PKG}/${module}`);
  return mod[path.basename(module)];
}

const decls = [];  // [resultIndex, where, module, object]
for (const [i, o] of objects.entries()) {
  const module = KINDS[`${o.apiVersion}/${o.kind}`];
  if (!module) {
    results[i].errors.push(`no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  decls.push([i, "", module, o]);
  if (o.kind === "AlertmanagerConfig") {
    for (const [where, r] of subRoutes(o.spec?.route, "spec.route")) decls.push([i, where, ROUTE, r]);
  }
}

// 1. JSON-schema validation.
for (const [i, where, module, o] of decls) {
  const Model = await modelFor(module);
  try {
    new Model(o).validate();
  } catch (e) {
    results[i].errors.push(`${where ? where + ": " : ""}${e.message}`);
  }
}

// 2. Type check: one declaration per object, in a virtual file resolved from this directory.
const here = path.dirname(fileURLToPath(import.meta.url));
const file = path.join(here, "__objects__.ts");
const lines = [];
decls.forEach(([, , module], n) => {
  const type = "I" + path.basename(module);
  lines.push(`import type { ${type} as T${n} } from "${PKG}/${module}";`);
});
const lineOf = [];
decls.forEach(([i, , , o], n) => {
  lineOf.push([lines.length, i, decls[n][1]]);
  lines.push(`export const o${n}: T${n} = ${JSON.stringify(o)};`);
});
const source = lines.join("\n") + "\n";
const options = {
  strict: true, noEmit: true, skipLibCheck: true, types: [],
  module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
};
const host = ts.createCompilerHost(options);
const getSourceFile = host.getSourceFile;
host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, ...rest));
const fileExists = host.fileExists;
host.fileExists = (f) => f === file || fileExists(f);
const program = ts.createProgram([file], options, host);
for (const d of ts.getPreEmitDiagnostics(program)) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  if (!d.file || d.file.fileName !== file) throw new Error(`type check failed outside the objects: ${message}`);
  const { line } = d.file.getLineAndCharacterOfPosition(d.start);
  const hit = lineOf.find(([l]) => l === line);
  if (!hit) throw new Error(`type check failed on an import (is the package installed?): ${message}`);
  results[hit[1]].errors.push(`${hit[2] ? hit[2] + ": " : ""}${message}`);
}
process.stdout.write(JSON.stringify(results, null, 1) + "\n");

// spec/k8s/validate.js — validates manifests against Kubeflow Trainer's CRD schemas.
//
//   node spec/k8s/validate.js CRD_DIR MANIFEST.yaml ...     one JSON line per document
//   node spec/k8s/validate.js --dump MANIFEST.yaml          the documents as one JSON array
//
// Each CRD's openAPIV3Schema becomes a JSON Schema the way the API server reads
// it: x-kubernetes-int-or-string becomes anyOf integer/string, nullable adds
// "null" to the type, and an object without x-kubernetes-preserve-unknown-fields
// gets additionalProperties: false (the server would prune unknown fields; we
// call them errors). metadata is ObjectMeta, which the server checks itself: a
// strict subset stands in for it. ConfigMaps (core v1) get a small schema of
// their own. ajv (strict mode) then validates every document; the CEL rules of
// the CRDs are checked by lua/moonspeed/k8s_rules.lua, not here.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const Ajv = require("ajv");

const META = {
  type: "object",
  additionalProperties: false,
  required: ["name"],
  properties: {
    name: { type: "string", minLength: 1, maxLength: 253 },
    namespace: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 63 },
    labels: { type: "object", additionalProperties: { type: "string", maxLength: 63 } },
    annotations: { type: "object", additionalProperties: { type: "string" } },
  },
};

const CONFIGMAP = {
  type: "object",
  additionalProperties: false,
  required: ["apiVersion", "kind", "metadata"],
  properties: {
    apiVersion: { const: "v1" },
    kind: { const: "ConfigMap" },
    metadata: META,
    data: { type: "object", propertyNames: { pattern: "^[-._a-zA-Z0-9]+$" }, additionalProperties: { type: "string" } },
    binaryData: { type: "object", additionalProperties: { type: "string" } },
    immutable: { type: "boolean" },
  },
};

// The API server's reading of a structural schema, as JSON Schema.
function convert(s) {
  if (Array.isArray(s)) return s.map(convert);
  if (s === null || typeof s !== "object") return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith("x-kubernetes-") || k === "nullable" || k === "description") continue;
    if (k === "properties" || k === "patternProperties") {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, convert(sub)]));
    } else if (k === "additionalProperties" && typeof v === "object") {
      out[k] = convert(v);
    } else if (["items", "anyOf", "allOf", "oneOf", "not"].includes(k)) {
      out[k] = convert(v);
    } else {
      out[k] = v;
    }
  }
  if (s["x-kubernetes-int-or-string"] && !s.anyOf) {
    delete out.type;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (s.nullable && out.type) out.type = [out.type, "null"];
  const isObject = s.type === "object";
  if (isObject && !s["x-kubernetes-preserve-unknown-fields"] && s.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  return out;
}

function loadCrds(dir) {
  const schemas = {};
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
    const doc = YAML.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    if (!doc || doc.kind !== "CustomResourceDefinition") continue;
    for (const v of doc.spec.versions) {
      const schema = convert(v.schema.openAPIV3Schema);
      schema.properties.metadata = META;
      schema.required = Array.from(new Set([...(schema.required || []), "apiVersion", "kind", "metadata"]));
      schemas[`${doc.spec.group}/${v.name} ${doc.spec.names.kind}`] = schema;
    }
  }
  return schemas;
}

function formats(ajv) {
  const int = (bits) => ({ type: "number", validate: (x) => Number.isInteger(x) && Math.abs(x) <= 2 ** (bits - 1) });
  ajv.addFormat("int32", int(32));
  ajv.addFormat("int64", int(64));
  ajv.addFormat("date-time", { type: "string", validate: (x) => !Number.isNaN(Date.parse(x)) });
  ajv.addFormat("byte", { type: "string", validate: (x) => /^[A-Za-z0-9+/]*={0,2}$/.test(x) });
}

function documents(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((d) => d !== null);
}

function main(argv) {
  if (argv[0] === "--dump") {
    process.stdout.write(JSON.stringify(documents(argv[1])) + "\n");
    return 0;
  }
  const [crdDir, ...files] = argv;
  if (!crdDir || files.length === 0) {
    process.stderr.write("usage: node validate.js CRD_DIR MANIFEST.yaml ... | --dump MANIFEST.yaml\n");
    return 2;
  }
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  formats(ajv);
  const validators = { "v1 ConfigMap": ajv.compile(CONFIGMAP) };
  for (const [key, schema] of Object.entries(loadCrds(crdDir))) validators[key] = ajv.compile(schema);
  let bad = 0;
  for (const file of files) {
    documents(file).forEach((doc, i) => {
      const key = `${doc.apiVersion} ${doc.kind}`;
      const validate = validators[key];
      const name = doc.metadata && doc.metadata.name;
      const res = { file: path.basename(file), index: i, kind: doc.kind, name };
      if (!validate) {
        res.valid = false;
        res.errors = [`no schema for ${key}; known: ${Object.keys(validators).join(", ")}`];
      } else {
        res.valid = validate(doc);
        res.errors = (validate.errors || []).map((e) =>
          `${e.instancePath || "/"} ${e.message}${e.params && e.params.additionalProperty ? `: ${e.params.additionalProperty}` : ""}`);
      }
      if (!res.valid) bad++;
      process.stdout.write(JSON.stringify(res) + "\n");
    });
  }
  return bad === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));

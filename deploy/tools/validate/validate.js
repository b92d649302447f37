#!/usr/bin/env node
// Reads rendered Kubernetes manifests (multi-document YAML) on stdin and validates every object against the schema
// of its apiVersion and kind: Kubernetes itself, Strimzi, CloudNativePG and prometheus-operator. An object of a kind
// none of them knows is an error, not a pass: a typo in apiVersion would otherwise go unchecked.
// Exit code 0 when all are valid; 1 with one line per problem on stderr otherwise.
import { parseAllDocuments } from "yaml";
import * as kubernetes from "kubernetes-models";
import * as strimzi from "@kubernetes-models/strimzi-kafka-operator";
import * as cnpg from "@kubernetes-models/cloudnative-pg";
import * as prometheusOperator from "@kubernetes-models/prometheus-operator";

function collectModels(namespace, into, seen = new Set()) {
  if (seen.has(namespace)) return into;
  seen.add(namespace);
  for (const value of Object.values(namespace)) {
    if (typeof value === "function" && typeof value.apiVersion === "string" && typeof value.kind === "string") {
      into.set(`${value.apiVersion}/${value.kind}`, value);
    } else if (value && typeof value === "object") {
      collectModels(value, into, seen);
    }
  }
  return into;
}

const models = new Map();
for (const family of [kubernetes, strimzi, cnpg, prometheusOperator]) collectModels(family, models);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const problems = [];
let checked = 0;
for (const [index, document] of parseAllDocuments(await readStdin()).entries()) {
  if (document.errors.length > 0) {
    problems.push(`document ${index}: not YAML: ${document.errors[0].message}`);
    continue;
  }
  const object = document.toJS();
  if (object === null || object === undefined) continue;
  const name = `${object.kind ?? "?"} ${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? "?"}`;
  const Model = models.get(`${object.apiVersion}/${object.kind}`);
  if (!Model) {
    problems.push(`${name}: no schema for apiVersion ${object.apiVersion} kind ${object.kind}`);
    continue;
  }
  try {
    new Model(object).validate();
    checked += 1;
  } catch (error) {
    problems.push(`${name} (${object.apiVersion}): ${error.message}`);
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
console.log(`${checked} objects valid`);

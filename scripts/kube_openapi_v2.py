#!/usr/bin/env python3
"""Writes the Kubernetes OpenAPI v2 (Swagger 2.0) definitions for a version, made from the JSON
Schemas PyPI's `kubernetes-validate` ships (the API's own types): `$defs` become
`definitions`, nullable types their plain type, Quantity and IntOrString the strings they are
on the wire. kubectl validates manifests against this (served as protobuf by the manifests
test). Usage: kube_openapi_v2.py VERSION OUT.json
"""

import json
import sys

import kubernetes_validate


def fix(s, in_props=False):
    if isinstance(s, dict):
        out = {}
        for k, v in s.items():
            if in_props:
                out[k] = fix(v)
            elif k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/$defs/", "#/definitions/")
            elif k == "type" and isinstance(v, list):
                out[k] = [t for t in v if t != "null"][0]
            elif k in ("properties", "patternProperties"):
                out[k] = fix(v, True)
            elif k in ("$schema", "$id"):
                continue
            else:
                out[k] = fix(v)
        return out
    if isinstance(s, list):
        return [fix(x) for x in s]
    return s


def main():
    version, out = sys.argv[1], sys.argv[2]
    defs = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}.0-local/_definitions.json", version)["$defs"]
    defs = {k: fix(v) for k, v in defs.items()}
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": "string"}
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": "string", "format": "int-or-string"}
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": f"v{version}.0"},
           "paths": {}, "definitions": defs}
    with open(out, "w") as f:
        json.dump(doc, f)
    print(f"{len(defs)} definitions of Kubernetes {version} in {out}")


if __name__ == "__main__":
    main()

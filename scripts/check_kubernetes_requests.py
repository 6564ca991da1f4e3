#!/usr/bin/env python3
"""Checks what Apiary's Kubernetes provider sent to the Kubernetes API stand-in, and what the
stand-in answered, against the Kubernetes OpenAPI types (PyPI `kubernetes-validate`, strict:
no field the API does not know, every type right).

Input: a JSON-lines file of exchanges {method, path, query, request, status, response}.
Each must be one of the API's operations on Pods and Secrets in a namespace (method, path and
query parameters as the API defines them); request bodies and answers must validate as the
operation's kinds (`Status` for errors). Exit 1 with every problem listed, else 0.
"""

import json
import re
import sys
from urllib.parse import parse_qsl

import kubernetes_validate

VERSION = "1.34"

LIST_PARAMS = {
    "labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
    "resourceVersionMatch", "timeoutSeconds", "watch", "allowWatchBookmarks", "pretty",
    "sendInitialEvents",
}
WRITE_PARAMS = {"dryRun", "fieldManager", "fieldValidation", "pretty"}
DELETE_PARAMS = {"dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy", "pretty",
                 "ignoreStoreReadErrorWithClusterBreakingPotential"}

NS = r"/api/v1/namespaces/[a-z0-9]([-a-z0-9]*[a-z0-9])?"
NAME = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"

# (method, path pattern, operation, request kind, success kind, query parameters allowed)
OPERATIONS = []
for plural, kind in (("pods", "Pod"), ("secrets", "Secret")):
    OPERATIONS += [
        ("POST", rf"{NS}/{plural}", f"createNamespaced{kind}", kind, kind, WRITE_PARAMS),
        ("GET", rf"{NS}/{plural}", f"listNamespaced{kind}", None, f"{kind}List", LIST_PARAMS),
        ("GET", rf"{NS}/{plural}/{NAME}", f"readNamespaced{kind}", None, kind, {"pretty"}),
        ("DELETE", rf"{NS}/{plural}/{NAME}", f"deleteNamespaced{kind}", "DeleteOptions", kind,
         DELETE_PARAMS),
    ]

# Kinds of the meta group answer with apiVersion v1 but are defined in meta/v1.
META = {"Status", "DeleteOptions"}


def validate_meta(obj, kind):
    """A kind of the meta group (its schema file is `<kind>-meta-v1.json`)."""
    import jsonschema
    from referencing import Registry, Resource
    folder = f"kubernetes-json-schema/v{VERSION}.0-local-strict"
    schema = kubernetes_validate.utils.schema_contents(f"{folder}/{kind.lower()}-meta-v1.json", VERSION)
    defs = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json", VERSION)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    try:
        jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(obj)
    except jsonschema.ValidationError as e:
        return f"{kind}: {e.message} at {'/'.join(str(p) for p in e.path)}"
    return None


def validate(obj, kind):
    if not isinstance(obj, dict):
        return f"not an object: {obj!r}"[:200]
    if kind == "DeleteOptions" and "kind" not in obj:
        # Optional on a DeleteOptions body (the API takes it without).
        return validate_meta(obj, kind)
    if obj.get("kind") != kind:
        return f"kind {obj.get('kind')!r}, expected {kind}"
    if kind in META:
        return validate_meta(obj, kind)
    try:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{kind}: {e.message} at {'/'.join(str(p) for p in e.path)}"
    return None


def check(x):
    problems = []
    op = next((o for o in OPERATIONS if o[0] == x["method"] and re.fullmatch(o[1], x["path"])), None)
    if op is None:
        return [f"{x['method']} {x['path']}: not an operation of the Kubernetes API on Pods or Secrets"]
    method, _, name, req_kind, ok_kind, params = op
    for k, _ in parse_qsl(x.get("query") or "", keep_blank_values=True):
        if k not in params:
            problems.append(f"{name}: unknown query parameter {k!r}")
    req = x.get("request")
    if req_kind and req is not None:
        why = validate(req, req_kind)
        if why:
            problems.append(f"{name} request: {why}")
    elif req_kind and method == "POST":
        problems.append(f"{name}: no request body")
    status = x["status"]
    if 200 <= status < 300:
        why = validate(x["response"], ok_kind)
    else:
        why = validate(x["response"], "Status")
    if why:
        problems.append(f"{name} answer {status}: {why}")
    return problems


def main():
    problems = []
    count = 0
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            count += 1
            problems += check(json.loads(line))
    if count == 0:
        problems.append("no exchange was recorded")
    for p in problems:
        print(p)
    print(f"{count} Kubernetes API exchanges checked against the {VERSION} types, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks what Apiary sent to the GitHub stand-in, and what the stand-in answered, against
GitHub's published REST API description (npm @octokit/openapi, api.github.com.json).

Usage: check_github_requests.py REQUESTS.json API.GITHUB.COM.json

For each recorded request: the path and method are an operation of the description; every
path and query parameter is one the operation declares and validates against its schema; a
JSON body validates against the request body's schema (and one is sent when required); the
answer's status is one the operation documents and a JSON answer validates against it.
Prints each problem; exits 1 when there is any.
"""

import json
import re
import sys
from urllib.parse import parse_qsl

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DOC = "urn:github-rest"


def openapi30_to_jsonschema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema (draft 4) says it."""
    if isinstance(node, list):
        return [openapi30_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi30_to_jsonschema(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def main():
    records = json.load(open(sys.argv[1]))
    spec = json.load(open(sys.argv[2]))
    spec = openapi30_to_jsonschema(spec)
    registry = Registry().with_resource(DOC, Resource(contents=spec, specification=DRAFT4))

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target = spec
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def validate(value, *where):
        schema = {"$ref": DOC + "#/" + pointer(*where)}
        validator = jsonschema.Draft4Validator(schema, registry=registry)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
            for e in validator.iter_errors(value)
        ]

    # Path templates, most literal first (fewest parameters).
    templates = []
    for template in spec["paths"]:
        names = re.findall(r"\{([^}]+)\}", template)
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$"
        templates.append((len(names), template, re.compile(regex), names))
    templates.sort(key=lambda t: t[0])

    problems = []
    operations = set()
    for i, r in enumerate(records):
        label = f"#{i} {r['method']} {r['path']}" + (f"?{r['query']}" if r["query"] else "")
        method = r["method"].lower()
        match = None
        for _, template, regex, names in templates:
            m = regex.match(r["path"])
            if m and method in spec["paths"][template]:
                match = (template, dict(zip(names, m.groups())))
                break
        if match is None:
            problems.append(f"{label}: no such operation in GitHub's REST API")
            continue
        template, path_values = match
        op = spec["paths"][template][method]
        operations.add(f"{method.upper()} {template}")
        params = {}
        for index, p in enumerate(op.get("parameters", [])):
            where = ["paths", template, method, "parameters", index]
            if "$ref" in p:
                name = p["$ref"].split("/")[-1]
                p = resolve(p)
                where = ["components", "parameters", name]
            params[(p["in"], p["name"])] = (p, where)
        for name, value in path_values.items():
            p, where = params.get(("path", name), (None, None))
            if p is None:
                problems.append(f"{label}: path parameter {name} is not declared")
                continue
            schema = resolve(p.get("schema", {}))
            typed = int(value) if schema.get("type") == "integer" and value.isdigit() else value
            for e in validate(typed, *where, "schema"):
                problems.append(f"{label}: path parameter {name}: {e}")
        for name, value in parse_qsl(r["query"], keep_blank_values=True):
            p, where = params.get(("query", name), (None, None))
            if p is None:
                problems.append(f"{label}: query parameter {name} is not declared")
                continue
            schema = resolve(p.get("schema", {}))
            typed = int(value) if schema.get("type") == "integer" and value.isdigit() else value
            for e in validate(typed, *where, "schema"):
                problems.append(f"{label}: query parameter {name}: {e}")
        body = op.get("requestBody")
        if body is not None:
            body = resolve(body)
            if r["body"] is None:
                if body.get("required"):
                    problems.append(f"{label}: the operation requires a body")
            else:
                for e in validate(
                    r["body"],
                    "paths", template, method, "requestBody", "content", "application/json", "schema",
                ):
                    problems.append(f"{label}: body: {e}")
        elif r["body"] is not None:
            problems.append(f"{label}: the operation takes no body")
        if r["authorization"] == "" or r["api_version"] != "2022-11-28":
            problems.append(f"{label}: no token, or not API version 2022-11-28")
        status = str(r["status"])
        answer = op["responses"].get(status)
        if answer is None:
            problems.append(f"{label}: the stand-in answered {status}, which GitHub does not document")
            continue
        where = ["paths", template, method, "responses", status]
        if "$ref" in answer:
            where = ["components", "responses", answer["$ref"].split("/")[-1]]
            answer = resolve(answer)
        content = answer.get("content", {}).get("application/json")
        if content is not None and r["response"] is not None:
            for e in validate(r["response"], *where, "content", "application/json", "schema"):
                problems.append(f"{label}: answer {status}: {e}")

    for p in problems:
        print(p)
    print(
        f"{len(records)} request(s) to {len(operations)} GitHub operation(s): "
        + ("all conform" if not problems else f"{len(problems)} problem(s)")
    )
    for o in sorted(operations):
        print(f"  {o}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks what Apiary sent to the Slack stand-in, and the payloads the stand-in (as Slack) sent to
Apiary, against Slack's published TypeScript types turned into JSON Schemas (draft 7) by
`make chat-schemas`: @slack/web-api's method arguments and @slack/bolt's payload types.

Usage: check_slack_requests.py RECORDS.json SCHEMA_DIR     (SCHEMA_DIR: target/chat-schemas/slack)

RECORDS is a JSON array; each record is one of
  {"kind": "request", "method": "chat.postMessage", "body": {...}}
      a Web API call Apiary made, its JSON body (the token travels in the Authorization header,
      so the schemas' optional `token` is simply absent). Methods and their schemas:
      chat.postMessage ChatPostMessageArguments, chat.update ChatUpdateArguments,
      chat.postEphemeral ChatPostEphemeralArguments, views.open ViewsOpenArguments.
  {"kind": "payload", "type": "block_actions", "body": {...}}
      a payload sent to Apiary: block_actions BlockAction, view_submission ViewSubmitAction (both
      arrive as application/x-www-form-urlencoded with one field, `payload`, holding the JSON
      that `body` is), slash_command SlashCommand (form fields; `body` is them as an object of
      strings, so a value the schema leaves open must still be a string).

Where the generated schemas fall short of what Slack really sends:
  - BlockAction: @slack/bolt's BlockAction is generic, and ts-json-schema-generator takes no
    generic type as a root, so BlockAction.json is generated from an alias of its default
    instance, BlockAction<BlockElementAction> (the same type; its top $ref is
    BlockActionPayload).
  - Three fields Slack sends that bolt 5.1.0's types lack are added to the loaded schemas
    before validating (Slack's payload references and payloads captured from Slack show
    them): `"enterprise": null` in block_actions and view_submission (bolt types it as an
    optional object only), `user.username` in view_submission (bolt has id, name, team_id),
    and a clicked button's `style` ("primary"/"danger") in block_actions' actions (bolt's
    ButtonAction has none).
  No type needed a fallback: every listed type generated and validates.

The generated schemas close every object (additionalProperties: false) where the TypeScript type
has no index signature, so a field the type does not have is reported; open ones (a
block_actions `message`, `container`, a slash command) accept any field. Many types are unions
(ChatPostMessageArguments is one of dozens of closed objects, a block one of the Block Kit
blocks): when none matches, the problems reported are those of the likeliest branch (fewest
faults, then the deepest), and say so.

Prints each problem with its record's index; exits 1 when there is any, else prints
"N records conform".
"""

import json
import os
import sys

import jsonschema

REQUESTS = {
    "chat.postMessage": "ChatPostMessageArguments",
    "chat.update": "ChatUpdateArguments",
    "chat.postEphemeral": "ChatPostEphemeralArguments",
    "views.open": "ViewsOpenArguments",
}
PAYLOADS = {
    "block_actions": "BlockAction",
    "view_submission": "ViewSubmitAction",
    "slash_command": "SlashCommand",
}


def nullable(schema):
    if {"type": "null"} in schema.get("anyOf", []):
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def add_property(obj, name, schema):
    assert obj.get("type") == "object" and "properties" in obj, obj
    obj["properties"].setdefault(name, schema)


def patch(name, schema):
    """What Slack sends that @slack/bolt's types leave out (see the docstring)."""
    defs = schema["definitions"]
    if name == "BlockAction":
        top = defs["BlockAction"]
        top["properties"]["enterprise"] = nullable(top["properties"]["enterprise"])
        add_property(defs["ButtonAction"], "style", {"enum": ["primary", "danger"], "type": "string"})
    elif name == "ViewSubmitAction":
        top = defs["ViewSubmitAction"]
        top["properties"]["enterprise"] = nullable(top["properties"]["enterprise"])
        add_property(top["properties"]["user"], "username", {"type": "string"})
    return schema


VALIDATORS = {}


def validator(schema_dir, name):
    if name not in VALIDATORS:
        path = os.path.join(schema_dir, name + ".json")
        schema = patch(name, json.load(open(path)))
        jsonschema.Draft7Validator.check_schema(schema)
        VALIDATORS[name] = jsonschema.Draft7Validator(schema)
    return VALIDATORS[name]


def where(error):
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def weight(error):
    """How far off an error is: an unexpected property counts once for each name."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return max(1, sum(1 for k in error.instance if k not in known))
    return 1


def leaves(error):
    """The errors that explain `error`: for an anyOf (or oneOf) that no branch matched, those of
    the likeliest branch (fewest faults, then the deepest), recursively."""
    if not error.context:
        return [error]
    branches = {}
    for e in error.context:
        branches.setdefault(e.relative_schema_path[0], []).append(e)
    chosen = min(
        branches.values(),
        key=lambda errs: (sum(map(weight, errs)), -max(len(e.absolute_path) for e in errs)),
    )
    return [leaf for e in chosen for leaf in leaves(e)]


def describe(error):
    """Lines for an error, each `path: reason`; an unmatched union notes that it guessed."""
    found = leaves(error)
    note = " (in the likeliest branch of a union none matched)" if error.context else ""
    return [f"{where(e)}: {e.message[:300]}{note}" for e in found]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    records = json.load(open(sys.argv[1]))
    schema_dir = sys.argv[2]
    problems = []
    for i, record in enumerate(records):
        record = record if isinstance(record, dict) else {}
        kind = record.get("kind")
        body = record.get("body")
        if kind == "request":
            key = record.get("method")
            name = REQUESTS.get(key)
        elif kind == "payload":
            key = record.get("type")
            name = PAYLOADS.get(key)
        else:
            key, name = None, None
        label = f"#{i} {kind} {key}"
        if kind not in ("request", "payload"):
            problems.append(f"#{i}: unknown record kind {kind!r} (request or payload)")
            continue
        if name is None:
            known = sorted(REQUESTS if kind == "request" else PAYLOADS)
            problems.append(f"{label}: not one of the checked {kind}s {known}")
            continue
        if not isinstance(body, dict):
            problems.append(f"{label}: body: not a JSON object")
            continue
        checker = validator(schema_dir, name)
        errors = sorted(checker.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
        problems += [f"{label}: {line}" for e in errors for line in describe(e)]
        if key == "slash_command":
            declared = checker.schema["definitions"]["SlashCommand"]["properties"]
            problems += [
                f"{label}: {k}: {json.dumps(v)[:80]} is not a string (slash commands are form fields)"
                for k, v in body.items()
                if k not in declared and not isinstance(v, str)
            ]

    for p in problems:
        print(p)
    if problems:
        print(f"{len(records)} record(s): {len(problems)} problem(s)")
        sys.exit(1)
    print(f"{len(records)} records conform")


if __name__ == "__main__":
    main()

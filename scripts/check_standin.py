#!/usr/bin/env python3
"""Checks the test kit's stand-in model provider against the providers' own published types.

Each line of the input file is one answer the stand-in gave:
  {"api": "anthropic" | "chat" | "responses" | "gemini", "stream": bool,
   "body": {...}            (a whole answer), or
   "events": [{...}, ...]}  (the data of each server-sent event of a streamed answer)
Each is validated with the SDK's pydantic models (PyPI: anthropic, openai, google-genai), so
the stand-in cannot drift from the APIs the real CLIs speak. Exits 1 naming every mismatch.
"""
import json
import sys
import typing

from pydantic import TypeAdapter, ValidationError

from anthropic.types import Message, RawMessageStreamEvent
from google.genai import types as genai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

WHOLE = {
    "anthropic": TypeAdapter(Message),
    "chat": TypeAdapter(ChatCompletion),
    "responses": TypeAdapter(Response),
    "gemini": TypeAdapter(genai.GenerateContentResponse),
}
EVENT = {
    "anthropic": TypeAdapter(RawMessageStreamEvent),
    "chat": TypeAdapter(ChatCompletionChunk),
    "responses": TypeAdapter(ResponseStreamEvent),
    "gemini": TypeAdapter(genai.GenerateContentResponse),
}


def by_type(union):
    """The members of a tagged union by their `type` literal: an event is checked against its
    own class, so a mismatch names its fields instead of every member of the union."""
    while typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    members = {}
    for member in typing.get_args(union):
        field = getattr(member, "model_fields", {}).get("type")
        for literal in typing.get_args(field.annotation) if field else ():
            members[literal] = TypeAdapter(member)
    return members


TAGGED = {
    "anthropic": by_type(RawMessageStreamEvent),
    "responses": by_type(ResponseStreamEvent),
}


def errors(e):
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:8])
    return str(e)


def main(path):
    failures, checked = [], 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            answer = json.loads(line)
            api = answer["api"]
            items = answer["events"] if answer["stream"] else [answer["body"]]
            adapter = EVENT[api] if answer["stream"] else WHOLE[api]
            if not items:
                failures.append(f"line {n}: {api}: no events")
            for item in items:
                checked += 1
                own = TAGGED.get(api, {}).get(item.get("type")) if answer["stream"] else None
                try:
                    (own or adapter).validate_python(item)
                except Exception as e:  # pydantic's ValidationError names every field
                    failures.append(f"line {n}: {api} stream={answer['stream']} {item.get('type', '')}: {errors(e)}")
    for f in failures:
        print(f, file=sys.stderr)
    print(f"stand-in conformance: {checked} objects checked, {len(failures)} mismatches")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

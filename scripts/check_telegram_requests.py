#!/usr/bin/env python3
"""Checks what Apiary sent to the Telegram Bot API stand-in, what the stand-in answered, and the
updates a test sent to Apiary, against the Bot API as aiogram 3 models it (PyPI aiogram, whose
models are generated from the published Bot API; `make test-deps` installs it).

Usage: check_telegram_requests.py RECORDS.json

RECORDS is a JSON array; each record is one of
  {"kind": "request", "method": "sendMessage", "body": {...}}
      a Bot API call Apiary made; `body` is its JSON body. It validates as the aiogram.methods
      model whose __api_method__ is `method` (an unknown method is a problem).
  {"kind": "answer", "method": "sendMessage", "body": {"ok": true, "result": ...}}
      what the stand-in answered to that call: `ok` true, `result` valid as the method's
      __returning__ type (an optional `description` string may accompany it, as Telegram's
      "Webhook was set" does), or {"ok": false, "error_code": int, "description": str} with an
      optional `parameters` (ResponseParameters).
  {"kind": "update", "body": {...}}
      an Update sent to Apiary (a webhook body, or one element of getUpdates' result): valid as
      aiogram.types.Update, and carrying exactly one of the update kinds (Telegram: "at most one
      of the optional parameters can be present in any given update"; none is no update at all).

Beyond validation, which aiogram keeps lenient, each of these is a problem:
  - a field the Bot API does not have: aiogram's models allow extra fields, so the validated tree
    is walked and every `model_extra` key is reported with its path;
  - a value pydantic accepted only by coercing it (the string "5" for an Integer, 1 for a
    Boolean, ...): the validated tree is serialised back and compared with what was sent;
  - a missing field that aiogram defaults but the Bot API requires: every Literal-typed field
    aiogram gives a default (`type` of MessageOrigin*, ReactionType*, BotCommandScope*...,
    ForceReply.force_reply, ReplyKeyboardRemove.remove_keyboard, ...);
  - an InlineKeyboardButton without exactly one field other than text, icon_custom_emoji_id and
    style, whose callback_data is not 1-64 bytes, or whose style is not danger/success/primary;
  - setWebhook's secret_token not matching ^[A-Za-z0-9_-]{1,256}$.
A reply_markup object is checked as the type its marker key names (inline_keyboard, keyboard,
remove_keyboard, force_reply), so a broken inline keyboard is reported as such rather than as
a ForceReply with an unknown field. Text with parse_mode MarkdownV2 is not parsed here.

Prints each problem with its record's index; exits 1 when there is any, else prints
"N records conform".
"""

import json
import re
import sys
import typing

import aiogram.methods
import aiogram.types
from aiogram.methods.base import TelegramMethod
from pydantic import BaseModel, TypeAdapter, ValidationError

MARKUPS = {
    "inline_keyboard": aiogram.types.InlineKeyboardMarkup,
    "keyboard": aiogram.types.ReplyKeyboardMarkup,
    "remove_keyboard": aiogram.types.ReplyKeyboardRemove,
    "force_reply": aiogram.types.ForceReply,
}
BUTTON_LOOKS = {"text", "icon_custom_emoji_id", "style"}
BUTTON_STYLES = {"danger", "success", "primary"}
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
ENVELOPE_OK = {"ok", "result", "description"}
ENVELOPE_ERROR = {"ok", "error_code", "description", "parameters"}


def methods():
    found = {}
    for name in dir(aiogram.methods):
        cls = getattr(aiogram.methods, name)
        if isinstance(cls, type) and issubclass(cls, TelegramMethod) and cls is not TelegramMethod:
            api = getattr(cls, "__api_method__", None)
            if isinstance(api, str):
                found[api] = cls
    return found


def join(path, *more):
    return "/".join(str(p) for p in (*path, *more)) or "(root)"


def alias(field, name):
    return field.alias or name


def walk(value, path, problems):
    """The checks pydantic's lenient validation leaves out, over a validated value."""
    if isinstance(value, BaseModel):
        cls = type(value)
        for key in value.model_extra or {}:
            problems.append(f"{join(path, key)}: no such field in {cls.__name__}")
        for name, field in cls.model_fields.items():
            if (
                typing.get_origin(field.annotation) is typing.Literal
                and not field.is_required()
                and name not in value.model_fields_set
            ):
                problems.append(
                    f"{join(path, alias(field, name))}: missing; the Bot API requires it in "
                    f"{cls.__name__} (always {typing.get_args(field.annotation)[0]!r})"
                )
        if isinstance(value, aiogram.types.InlineKeyboardButton):
            kinds = [
                alias(f, n)
                for n, f in cls.model_fields.items()
                if n not in BUTTON_LOOKS and getattr(value, n) is not None
            ]
            if len(kinds) != 1:
                problems.append(
                    f"{join(path)}: an InlineKeyboardButton needs exactly one field other than "
                    f"text, icon_custom_emoji_id and style; it has {kinds or 'none'}"
                )
            if value.callback_data is not None and not 1 <= len(value.callback_data.encode()) <= 64:
                problems.append(f"{join(path, 'callback_data')}: must be 1-64 bytes")
            if value.style is not None and value.style not in BUTTON_STYLES:
                problems.append(f"{join(path, 'style')}: must be one of {sorted(BUTTON_STYLES)}")
        for name, field in cls.model_fields.items():
            if name in value.model_fields_set:
                walk(getattr(value, name), (*path, alias(field, name)), problems)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            walk(item, (*path, i), problems)
    elif isinstance(value, dict):
        for key, item in value.items():
            walk(item, (*path, key), problems)


def same(sent, read, path, problems):
    """What was sent against the validated value serialised back: a difference is a coercion."""
    if isinstance(sent, dict) and isinstance(read, dict):
        for key, item in sent.items():
            if key in read:
                same(item, read[key], (*path, key), problems)
        return
    if isinstance(sent, list) and isinstance(read, list) and len(sent) == len(read):
        for i, (a, b) in enumerate(zip(sent, read)):
            same(a, b, (*path, i), problems)
        return
    numbers = (int, float)
    if (
        type(sent) is type(read)
        or (type(sent) in numbers and type(read) in numbers and sent == read)
    ) and sent == read:
        return
    problems.append(
        f"{join(path)}: {json.dumps(sent)[:80]} is not of the Bot API's type; "
        f"it is read only by coercion, as {json.dumps(read)[:80]}"
    )


def check(adapter, value, path=()):
    """Validate `value` as the adapter's type and run the extra checks; a list of problems."""
    try:
        validated = adapter.validate_python(value)
    except ValidationError as error:
        return [
            f"{join(path, *e['loc'])}: {e['msg']}"
            + (f" (got {json.dumps(e['input'])[:80]})" if e["type"] != "missing" else "")
            for e in error.errors(include_url=False)
        ]
    problems = []
    walk(validated, path, problems)
    read = adapter.dump_python(validated, mode="json", by_alias=True, exclude_unset=True)
    same(value, read, path, problems)
    return problems


ADAPTERS = {}


def adapter_for(t):
    key = repr(t)
    if key not in ADAPTERS:
        ADAPTERS[key] = TypeAdapter(t)
    return ADAPTERS[key]


def admits(annotation, model):
    if annotation is model:
        return True
    return any(admits(a, model) for a in typing.get_args(annotation))


def check_request(cls, body):
    problems = check(adapter_for(cls), body)
    markup = body.get("reply_markup")
    field = cls.model_fields.get("reply_markup")
    if isinstance(markup, dict) and field is not None:
        markers = [k for k in MARKUPS if k in markup]
        if len(markers) != 1:
            problems = [p for p in problems if not p.startswith("reply_markup")]
            problems.append(
                f"reply_markup: needs exactly one of {sorted(MARKUPS)}; it has {markers or 'none'}"
            )
        elif admits(field.annotation, MARKUPS[markers[0]]):
            problems = [p for p in problems if not p.startswith("reply_markup")]
            problems += check(adapter_for(MARKUPS[markers[0]]), markup, ("reply_markup",))
        else:
            problems.append(
                f"reply_markup: {cls.__api_method__} takes no {MARKUPS[markers[0]].__name__}"
            )
    if cls.__api_method__ == "setWebhook":
        token = body.get("secret_token")
        if token is not None and not (isinstance(token, str) and SECRET_TOKEN.match(token)):
            problems.append(f"secret_token: {json.dumps(token)[:80]} does not match {SECRET_TOKEN.pattern}")
    return problems


def check_update(body, path=()):
    problems = check(adapter_for(aiogram.types.Update), body, path)
    if isinstance(body, dict) and not problems:
        kinds = [k for k in body if k != "update_id"]
        if len(kinds) != 1:
            problems.append(f"{join(path)}: an Update carries exactly one update kind; this has {kinds or 'none'}")
    return problems


def check_answer(cls, body):
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        return ["(root): an answer is an object whose `ok` is true or false"]
    problems = []
    if body["ok"]:
        problems += [f"{k}: not a field of a successful answer" for k in body if k not in ENVELOPE_OK]
        if "result" not in body:
            problems.append("result: missing")
        else:
            problems += check(adapter_for(cls.__returning__), body["result"], ("result",))
            if cls.__api_method__ == "getUpdates" and isinstance(body["result"], list) and not problems:
                for i, update in enumerate(body["result"]):
                    problems += check_update(update, ("result", i))
        if "description" in body and not isinstance(body["description"], str):
            problems.append("description: not a string")
    else:
        problems += [f"{k}: not a field of an error answer" for k in body if k not in ENVELOPE_ERROR]
        code = body.get("error_code")
        if type(code) is not int:
            problems.append(f"error_code: {json.dumps(code)} is not an integer")
        if not isinstance(body.get("description"), str):
            problems.append("description: missing or not a string")
        if "parameters" in body:
            problems += check(adapter_for(aiogram.types.ResponseParameters), body["parameters"], ("parameters",))
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    records = json.load(open(sys.argv[1]))
    known = methods()
    problems = []
    for i, record in enumerate(records):
        kind = record.get("kind") if isinstance(record, dict) else None
        method = record.get("method") if isinstance(record, dict) else None
        label = f"#{i} {kind} {method}" if method else f"#{i} {kind}"
        body = record.get("body") if isinstance(record, dict) else None
        if kind in ("request", "answer"):
            cls = known.get(method)
            if cls is None:
                found = [f"the Bot API has no method {method!r}"]
            elif not isinstance(body, dict):
                found = ["body: not a JSON object"]
            elif kind == "request":
                found = check_request(cls, body)
            else:
                found = check_answer(cls, body)
        elif kind == "update":
            found = check_update(body) if isinstance(body, dict) else ["body: not a JSON object"]
        else:
            found = [f"unknown record kind {kind!r} (request, answer or update)"]
        problems += [f"{label}: {p}" for p in found]

    for p in problems:
        print(p)
    if problems:
        print(f"{len(records)} record(s): {len(problems)} problem(s)")
        sys.exit(1)
    print(f"{len(records)} records conform")


if __name__ == "__main__":
    main()

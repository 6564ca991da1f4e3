#!/usr/bin/env python3
"""Proves that scripts/check_telegram_requests.py and scripts/check_slack_requests.py pass what
Telegram and Slack really send and accept (the samples in scripts/chat_samples/), and catch
faults: each bad case is a good sample with one fault put in.

Each checker runs once on all its good samples (exit 0, "N records conform"), and once for each
kind of record (Telegram: request, answer, update; Slack: request, payload) on that kind's bad
cases (exit 1, and each bad record's index reported with a message naming its fault). Runs are
batched because importing aiogram alone takes seconds.

Usage: test_chat_checkers.py [SLACK_SCHEMA_DIR]   (default target/chat-schemas/slack; needs
`make test-deps chat-schemas`). Ends with "N passed, N failed"; exits 1 on any failure.
"""

import copy
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLES = os.path.join(HERE, "chat_samples")
SCHEMAS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "chat-schemas", "slack")
TELEGRAM = [sys.executable, os.path.join(HERE, "check_telegram_requests.py")]
SLACK = [sys.executable, os.path.join(HERE, "check_slack_requests.py")]


def sample(name):
    with open(os.path.join(SAMPLES, name + ".json")) as f:
        return json.load(f)[0]


def run(checker, records):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(records, f)
    try:
        args = checker + [f.name] + ([SCHEMAS] if checker is SLACK else [])
        done = subprocess.run(args, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr
    finally:
        os.unlink(f.name)


def bad(name, mutate):
    record = copy.deepcopy(sample(name))
    if mutate is None:
        record["method"] = record["method"] + "e"
    else:
        mutate(record["body"])
    return record


def button(body, row=0, col=0):
    return body["reply_markup"]["inline_keyboard"][row][col]


def slack_button(body, i=0):
    return body["blocks"][1]["elements"][i]


# (what, checker, sample, fault, a fragment the report must hold)
BAD = [
    # Telegram: requests
    ("sendMessage: an inline button without text", TELEGRAM, "telegram_request_send_message_keyboard",
     lambda b: button(b).pop("text"), "reply_markup/inline_keyboard/0/0/text: Field required"),
    ("sendMessage: a field the Bot API does not have", TELEGRAM, "telegram_request_send_message_keyboard",
     lambda b: b.update(disable_preview=True), "disable_preview: no such field in SendMessage"),
    ("sendMessage: a button with both url and callback_data", TELEGRAM, "telegram_request_send_message_keyboard",
     lambda b: button(b, 1).update(callback_data="t42:open"), "exactly one field other than text"),
    ("sendMessage: callback_data over 64 bytes", TELEGRAM, "telegram_request_send_message_keyboard",
     lambda b: button(b).update(callback_data="x" * 65), "callback_data: must be 1-64 bytes"),
    ("sendMessage: an unknown field inside a button", TELEGRAM, "telegram_request_send_message_keyboard",
     lambda b: button(b).update(color="green"), "inline_keyboard/0/0/color: no such field"),
    ("sendMessage: ForceReply without force_reply", TELEGRAM, "telegram_request_send_message_force_reply",
     lambda b: b["reply_markup"].pop("force_reply"), "reply_markup: needs exactly one of"),
    ("sendMessage: chat_id as a float", TELEGRAM, "telegram_request_send_message_force_reply",
     lambda b: b.update(chat_id=583920174.5), "chat_id"),
    ("setWebhook: a secret_token with a space", TELEGRAM, "telegram_request_set_webhook",
     lambda b: b.update(secret_token="not secret"), "secret_token"),
    ("an unknown method", TELEGRAM, "telegram_request_get_me",
     None, "the Bot API has no method 'getMee'"),
    # Telegram: answers
    ("message_id as a string", TELEGRAM, "telegram_answer_send_message_keyboard",
     lambda b: b["result"].update(message_id="57"), "result/message_id: \"57\" is not of the Bot API's type"),
    ("a Message without chat", TELEGRAM, "telegram_answer_send_message_force_reply",
     lambda b: b["result"].pop("chat"), "result/chat: Field required"),
    ("is_bot as 1", TELEGRAM, "telegram_answer_get_me",
     lambda b: b["result"].update(is_bot=1), "result/is_bot"),
    ("an error without description", TELEGRAM, "telegram_answer_error_not_modified",
     lambda b: b.pop("description"), "description: missing"),
    ("a field the envelope does not have", TELEGRAM, "telegram_answer_set_webhook",
     lambda b: b.update(status="ok"), "status: not a field of a successful answer"),
    ("getUpdates with a broken update", TELEGRAM, "telegram_answer_get_updates",
     lambda b: b["result"][0]["callback_query"].pop("chat_instance"), "result/0/callback_query/chat_instance"),
    # Telegram: updates
    ("a callback_query without chat_instance", TELEGRAM, "telegram_update_callback_query",
     lambda b: b["callback_query"].pop("chat_instance"), "callback_query/chat_instance: Field required"),
    ("a field Chat does not have", TELEGRAM, "telegram_update_reply_to_bot",
     lambda b: b["message"]["reply_to_message"]["chat"].update(kind="private"),
     "message/reply_to_message/chat/kind: no such field in Chat"),
    ("two update kinds", TELEGRAM, "telegram_update_callback_query",
     lambda b: b.update(message=sample("telegram_update_reply_to_bot")["body"]["message"]),
     "exactly one update kind"),
    ("date as an ISO string", TELEGRAM, "telegram_update_reply_to_bot",
     lambda b: b["message"].update(date="2024-12-02T12:01:40Z"), "message/date"),
    ("a forward_origin without its type", TELEGRAM, "telegram_update_reply_to_bot",
     lambda b: b["message"].update(forward_origin={"date": 1733130000, "sender_user": b["message"]["from"]}),
     "message/forward_origin"),
    # Slack: requests
    ("chat.postMessage: a button without text", SLACK, "slack_request_chat_post_message",
     lambda b: slack_button(b).pop("text"), "blocks/1/elements/0: 'text' is a required property"),
    ("chat.postMessage: a field chat.postMessage does not take", SLACK, "slack_request_chat_post_message",
     lambda b: b.update(attachements=[]), "'attachements' was unexpected"),
    ("chat.postMessage: a button style Slack does not have", SLACK, "slack_request_chat_post_message",
     lambda b: slack_button(b).update(style="success"), "blocks/1/elements/0/style"),
    ("chat.postMessage: no channel", SLACK, "slack_request_chat_post_message",
     lambda b: b.pop("channel"), "'channel' is a required property"),
    ("chat.update: no ts", SLACK, "slack_request_chat_update",
     lambda b: b.pop("ts"), "'ts' is a required property"),
    ("chat.postEphemeral: no user", SLACK, "slack_request_chat_post_ephemeral",
     lambda b: b.pop("user"), "'user' is a required property"),
    ("views.open: multiline as a string", SLACK, "slack_request_views_open",
     lambda b: b["view"]["blocks"][0]["element"].update(multiline="yes"),
     "view/blocks/0/element/multiline: 'yes' is not of type 'boolean'"),
    ("views.open: a modal without title", SLACK, "slack_request_views_open",
     lambda b: b["view"].pop("title"), "'title' is a required property"),
    # Slack: payloads
    ("block_actions: no actions", SLACK, "slack_payload_block_actions",
     lambda b: b.pop("actions"), "'actions' is a required property"),
    ("block_actions: an action without action_ts", SLACK, "slack_payload_block_actions",
     lambda b: b["actions"][0].pop("action_ts"), "'action_ts' is a required property"),
    ("block_actions: a field Slack does not send", SLACK, "slack_payload_block_actions",
     lambda b: b.update(channel_id=b["channel"]["id"]), "'channel_id' was unexpected"),
    ("view_submission: a view without state", SLACK, "slack_payload_view_submission",
     lambda b: b["view"].pop("state"), "view: 'state' is a required property"),
    ("view_submission: team as a string", SLACK, "slack_payload_view_submission",
     lambda b: b.update(team=b["team"]["id"]), "team"),
    ("slash_command: no trigger_id", SLACK, "slack_payload_slash_command",
     lambda b: b.pop("trigger_id"), "'trigger_id' is a required property"),
    ("slash_command: a value that is not a string", SLACK, "slack_payload_slash_command",
     lambda b: b.update(is_enterprise_install=False), "is_enterprise_install: False is not of type 'string'"),
    ("slash_command: an undeclared field that is not a string", SLACK, "slack_payload_slash_command",
     lambda b: b.update(channel_is_private=False), "channel_is_private: false is not a string"),
]


def main():
    if not os.path.isdir(SCHEMAS):
        sys.exit(f"{SCHEMAS} is missing: run `make chat-schemas`")
    passed, failed = 0, 0

    def verdict(ok, what, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok    {what}")
        else:
            failed += 1
            print(f"FAIL  {what}\n" + "".join(f"      {line}\n" for line in detail.splitlines()))

    # Every good sample, one run a checker: exit 0 and "N records conform" say each conforms.
    for checker, prefix in ((TELEGRAM, "telegram_"), (SLACK, "slack_")):
        names = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(SAMPLES, prefix + "*.json")))
        records = [r for name in names for r in json.load(open(os.path.join(SAMPLES, name + ".json")))]
        code, out = run(checker, records)
        verdict(code == 0 and f"{len(records)} records conform" in out,
                f"good: {len(records)} samples pass {os.path.basename(checker[1])}: " + ", ".join(names), out)

    # The bad cases, one run for each checker and record kind: exit 1, and each record's own
    # problem reported under its index.
    groups = {}
    for case in BAD:
        kind = case[2].split("_")[1]
        groups.setdefault((case[1][1], kind), []).append(case)
    for (script, kind), cases in groups.items():
        checker = TELEGRAM if script == TELEGRAM[1] else SLACK
        code, out = run(checker, [bad(name, mutate) for _, _, name, mutate, _ in cases])
        verdict(code == 1, f"bad:  {os.path.basename(script)} exits 1 on faulty {kind}s", f"exit {code}:\n{out}")
        lines = out.splitlines()
        for i, (what, _, _, _, fragment) in enumerate(cases):
            mine = [line for line in lines if line.startswith(f"#{i} ")]
            verdict(any(fragment in line for line in mine), f"bad:  {kind}: {what}",
                    f"wanted a problem holding {fragment!r} for record #{i}; got:\n" + "\n".join(mine))

    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

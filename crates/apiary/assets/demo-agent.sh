#!/bin/sh
# Apiary's demo agent: a stand-in for a coding-agent CLI so the loop can be watched without
# one. It reads the prompt Apiary rendered ($APIARY_PROMPT_FILE) and acts by phase
# ($APIARY_PHASE); real projects use a preset (claude-code, codex, aider, opencode, gemini).
set -eu
prompt="$(cat "$APIARY_PROMPT_FILE")"
title="$(printf '%s\n' "$prompt" | sed -n 's/^Title: //p' | head -n 1)"
[ -n "$title" ] || title="the task"
echo "demo agent: phase $APIARY_PHASE for \"$title\""
case "$APIARY_PHASE" in
  spec|revise)
    mkdir -p .apiary
    cat > .apiary/SPEC.md <<SPEC
# Spec: $title

## Goal
Record the task in NOTES.md so the change is visible in the review.

## Approach
Append a line naming the task to NOTES.md.

## Files to change
- NOTES.md

## Tests
None: the demo repository has no test suite.
SPEC
    echo "wrote .apiary/SPEC.md"
    ;;
  implement)
    echo "- $title" >> NOTES.md
    echo "appended to NOTES.md"
    ;;
  changes)
    # Act on the review: copy each comment line of the prompt into NOTES.md.
    printf '%s\n' "$prompt" | sed -n 's/^- \(.*\)$/  - review: \1/p' >> NOTES.md
    echo "applied the review comments"
    ;;
esac

"""The case: filing and reading, the loop's transitions, time limits, escalation, dispatch, notifications."""

"""Decide: the posting policy run for a return, with what it needs from the Khaos mirrors,
money checks, re-evaluation when a cause changes, and follow-up documents."""

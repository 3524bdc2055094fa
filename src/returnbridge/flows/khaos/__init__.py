"""The Khaos channel: serving returns to Khaos polls, and what Khaos pushes."""

"""Read models and actions for the team console and the API: accounts, views, search,
mapping proposals."""

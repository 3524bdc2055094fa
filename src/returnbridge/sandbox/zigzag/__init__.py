"""ZigZag sandbox: API emulator (token, stock and non-returnable pushes) and a webhook sender."""

/** A mistake in how the tool was called: exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** Anything else that stops a command (unknown key, unreadable store, ...): exit code 1. */
export class CommandError extends Error {
  readonly exitCode = 1;
}

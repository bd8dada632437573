'use strict';
// Child processes for the benchmark: pinned to a core with taskset when it works, tracked so
// that every one of them is stopped on exit, on errors and on SIGINT.
const { spawn, spawnSync } = require('node:child_process');
const os = require('node:os');

const children = new Set();
let pinnable;

/** Whether processes can be pinned to cores 0 and 1 (taskset present, 2+ cores, allowed). */
function canPin() {
  if (pinnable === undefined) {
    pinnable =
      os.cpus().length >= 2 && ['0', '1'].every((core) => spawnSync('taskset', ['-c', core, 'true'], { stdio: 'ignore' }).status === 0);
  }
  return pinnable;
}

/** Spawns `cmd args` on `core` (taskset -c), or unpinned when pinning is not possible. */
function spawnPinned(core, cmd, args, { ipc = false, stdout = 'ignore' } = {}) {
  const [file, argv] = canPin() ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { stdio: ['ignore', stdout, 'inherit', ...(ipc ? ['ipc'] : [])] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.on('error', () => children.delete(child));
  return child;
}

/**
 * Node's options for a child: pinned to one core, V8's worker pool is sized from the parallelism
 * the process really has (`--v8-pool-size=0`: one thread) instead of Node's fixed 4. With 4,
 * V8's parallel and concurrent GC threads all share the one core with the event loop; here that
 * made every scavenge of a server under load 2-4x longer and the pauses of a major GC of the
 * 100,000-key heap 42-67 ms instead of 25-28 ms, with or without a flush.
 */
const NODE_OPTIONS = () => (canPin() ? ['--v8-pool-size=0'] : []);

/** A Node.js script of this directory as a child on `core`, with an IPC channel. */
function nodeChild(core, script, args = []) {
  return spawnPinned(core, process.execPath, [...NODE_OPTIONS(), require.resolve(`./${script}`), ...args], { ipc: true });
}

/** Resolves with the child's next message of `type`; rejects on an `error` message, exit or timeout. */
function nextMessage(child, type, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (msg) => {
      if (msg?.type === type) {
        done();
        resolve(msg);
      } else if (msg?.type === 'error') {
        done();
        reject(new Error(msg.message));
      }
    };
    const onExit = (code, signal) => {
      done();
      reject(new Error(`child process exited (${signal ?? code}) before sending "${type}"`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${type}"`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** Sends a message and waits for the reply of `replyType`. */
function ask(child, message, replyType, timeoutMs) {
  const reply = nextMessage(child, replyType, timeoutMs);
  child.send(message);
  return reply;
}

/** A message's content without its `type`. */
function payload(msg) {
  return Object.fromEntries(Object.entries(msg).filter(([name]) => name !== 'type'));
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. */
function stop(child, graceMs = 2000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Kills every child still running, synchronously (for exit handlers). */
function killAll() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

/** In a child: exit when the parent goes away (its IPC channel closes) or asks us to stop. */
function exitWithParent(onExit = () => undefined) {
  const leave = () => {
    try {
      onExit();
    } finally {
      process.exit(0);
    }
  };
  process.on('disconnect', leave);
  process.on('SIGTERM', leave);
  process.on('SIGINT', leave);
}

module.exports = { NODE_OPTIONS, canPin, spawnPinned, nodeChild, nextMessage, ask, payload, stop, killAll, exitWithParent };

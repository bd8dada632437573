import { readFileSync, writeFileSync } from 'node:fs';

/*
 * After `daymind-keys migrate`, the JSON store it copied from is left as it is (existing tools may
 * still read it), with a note beside it, `<store>.migrated`, saying where its keys went: the CLI
 * and servers pointed at the old file say so instead of quietly using keys that no longer change.
 */

export interface MigrationNote {
  /** Where the keys went: the Redis URL (password hidden) and prefix. */
  to: string;
  /** Unix seconds of the migration. */
  at: number;
}

export function migrationNotePath(storePath: string): string {
  return `${storePath}.migrated`;
}

/** Writes the note beside a store whose keys were copied to `to`. */
export function writeMigrationNote(storePath: string, note: MigrationNote): void {
  writeFileSync(migrationNotePath(storePath), JSON.stringify(note) + '\n', { mode: 0o600 });
}

/** The note beside a store, or undefined when it was never migrated (or the note cannot be read). */
export function readMigrationNote(storePath: string): MigrationNote | undefined {
  let text: string;
  try {
    text = readFileSync(migrationNotePath(storePath), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const note = JSON.parse(text) as Partial<MigrationNote>;
    return typeof note.to === 'string' && typeof note.at === 'number' ? { to: note.to, at: note.at } : undefined;
  } catch {
    return undefined;
  }
}

/** One line for people: `<store> was migrated to <to> on <date>`. */
export function migrationMessage(storePath: string, note: MigrationNote): string {
  return `the key store ${storePath} was migrated to ${note.to} on ${new Date(note.at * 1000).toISOString().slice(0, 19)}Z; its keys and counters there are the ones in use`;
}

import { ConfigError, resolveConfig } from '../../src';

describe('PostgreSQL settings', () => {
  test('KEY_STORE=postgres needs DATABASE_URL, a postgres:// URL, a plain schema name and no API_KEYS', () => {
    expect(() => resolveConfig({ env: { KEY_STORE: 'postgres' } })).toThrow(
      'KEY_STORE: is "postgres", but no database is configured: set DATABASE_URL (or the databaseUrl option)',
    );
    expect(() => resolveConfig({ env: { KEY_STORE: 'postgres', DATABASE_URL: 'mysql://db/x' } })).toThrow(
      'DATABASE_URL: must be a postgres:// or postgresql:// URL, got "mysql://db/x"',
    );
    expect(() => resolveConfig({ env: { KEY_STORE: 'postgres', DATABASE_URL: 'postgres://db/x', DATABASE_SCHEMA: 'Bad-Name' } })).toThrow(
      'DATABASE_SCHEMA: must be 1 to 48 lower-case letters, digits or _, starting with a letter',
    );
    expect(() => resolveConfig({ env: { KEY_STORE: 'postgres', DATABASE_URL: 'postgres://db/x', API_KEYS: 'k'.repeat(20) } })).toThrow(
      ConfigError,
    );
    expect(() => resolveConfig({ keyStore: 'postgres', databaseUrl: { query: 1 } as never, env: {} })).toThrow(
      'databaseUrl: must be a postgres:// URL or a pg Pool',
    );
    const config = resolveConfig({ env: { KEY_STORE: 'postgres', DATABASE_URL: 'postgresql://u@db/x', DATABASE_FAILURE_MODE: 'closed' } });
    expect(config.database).toEqual({ url: 'postgresql://u@db/x', schema: 'daymind', failureMode: 'closed', timeoutMs: 500 });
    expect(resolveConfig({ env: { DATABASE_URL: 'postgres://db/x' } }).keyStore).toBe('file'); // only KEY_STORE picks it
  });

  test('a missing pg is an error naming the package and how to install it', () => {
    jest.isolateModules(() => {
      jest.doMock('pg', () => {
        throw new Error("Cannot find module 'pg'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { daymindAuth: isolated } = require('../../src') as typeof import('../../src');
      expect(() => isolated({ env: { KEY_STORE: 'postgres', DATABASE_URL: 'postgres://127.0.0.1/x' } })).toThrow(
        /DATABASE_URL\) asks for PostgreSQL, but the optional peer dependency "pg" cannot be loaded \(.*\); install it: npm install pg/,
      );
      jest.dontMock('pg');
    });
  });
});

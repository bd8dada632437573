export const TOOL_HELP = `Usage: daymind-keys [--store PATH | --redis URL] [--env-file FILE] [--json] <command> [options]

Manage the API keys of a daymind-auth key store, also while a server is running on it.

Commands:
  list                          every key: prefix, owner, status, created, usage, today, last used
                                (and plan, month vs quota, credits, scopes where used)
  create OWNER                  a new key; prints it once
  set KEY|PREFIX                change a key's owner, meta, limit, expiry, Stripe customer, plan or scopes
  credits KEY|PREFIX            add to, set or refill a key's prepaid credits
  plans                         the plans in force (DAYMIND_PLANS_FILE)
  revoke KEY|PREFIX             refuse the key from now on (a running server within 1 s)
  show KEY|PREFIX               one key's record and counters
  rotate KEY|PREFIX             a new key with the same owner and settings; the old one is revoked
  usage                         usage totals per owner and per key
  report                        a month's usage per owner, top keys and days: table, JSON or HTML
  export                        per-owner usage totals from the ledger: csv, json or beancount
  billing                       what billing has not delivered yet: open windows, pending, dead letters
  migrate --from FILE --to URL  copy keys and counters from a JSON store to Redis (idempotent)

Global options:
  --store PATH       a JSON key store (default: API_KEY_STORE_PATH, else data/api_keys.json)
  --redis URL        a Redis key store (redis://host:6379); with KEY_STORE=redis, REDIS_URL is used
  --env-file FILE    read API_KEY_STORE_PATH, KEY_STORE, REDIS_URL, REDIS_PREFIX, DAYMIND_LEDGER_DIR
                     and DAYMIND_PLANS_FILE from a systemd-style env file (it wins over the environment)
  --json             machine-readable JSON on stdout
  -h, --help         this help; "daymind-keys <command> --help" for a command

A key is named by its full value, the beginning of its display prefix (dm_8fJq2L) or of its
hash (8 or more hex digits). Exit codes: 0 done, 1 failed, 2 wrong usage.
`;

export const COMMAND_HELP: Record<string, string> = {
  list: `Usage: daymind-keys list [--owner OWNER] [--json]

Every key in the store, or with --owner that owner's: display prefix, owner, status (active,
rotating with the time left of its grace period, revoked, expired), created (UTC),
usage_count, requests today (UTC day), last used (UTC). When plans are in force
(DAYMIND_PLANS_FILE) or a key has a plan, scopes or credits, also: plan, this UTC month's units
against the plan's monthly quota (120/10000, or 120 without a quota), prepaid credits (with their
refill) and scopes.
`,
  create: `Usage: daymind-keys create OWNER [--rate-limit N] [--expires DURATION|DATE] [--meta k=v ...] [--stripe-customer cus_...]
                            [--paddle-subscription sub_...] [--plan PLAN] [--scopes a,b] [--credits N] [--refill monthly:N|daily:N] [--json]

Creates a key for OWNER and prints it once on stdout (only its hash is stored; it cannot be
shown again). A running server accepts it on its first request.

  --rate-limit N          this key's limit in requests per minute (default: the server's)
  --expires DURATION|DATE the key is refused from then on: 30d, 12h, 2w, 1h30m, or 2027-01-31
                          (UTC midnight) or 2027-01-31T12:00:00Z
  --meta k=v              free-form data kept with the key; repeat for more pairs
  --email ADDRESS         where report --email sends the owner's monthly summary (meta.email)
  --stripe-customer cus_… the Stripe customer billed for the key's usage (BILLING_MODE=stripe)
  --paddle-subscription sub_…
                          the Paddle subscription charged for the key's usage (BILLING_MODE=paddle)
  --plan PLAN             the plan whose limits and monthly quota apply; one of the plans in force
                          (DAYMIND_PLANS_FILE, see daymind-keys plans)
  --scopes a,b            what the key may do (requireScope): comma-separated names of letters,
                          digits and _ : . - (at most 64 each)
  --credits N             prepaid units (a whole number); each allowed request spends its cost
  --refill monthly:N      restore the credits to N at the start of each UTC month (daily:N: day);
                          without --credits the key starts with N
`,
  set: `Usage: daymind-keys set KEY|PREFIX [--owner OWNER] [--meta k=v ...] [--rate-limit N|default] [--expires DURATION|DATE|never]
                         [--stripe-customer cus_...|none] [--paddle-subscription sub_...|none] [--plan PLAN|none] [--scopes a,b|none] [--json]

Changes a key's settings; running servers pick the change up within a second.

  --owner OWNER            who the key belongs to
  --meta k=v               sets k in the key's free-form data, keeping its other pairs; k= (no
                           value) removes k; repeat for more pairs
  --email ADDRESS|none     where report --email sends the owner's summary (meta.email), or none

  --rate-limit N|default   this key's limit in requests per minute, or back to the server's
  --expires DURATION|DATE  as for create, or never
  --stripe-customer ID     the Stripe customer billed for the key's usage, or none
  --paddle-subscription ID the Paddle subscription charged for the key's usage, or none
  --plan PLAN|none         one of the plans in force (DAYMIND_PLANS_FILE), or none for the
                           server's per-minute limit
  --scopes a,b|none        the key's scopes, replacing the ones it has, or none
`,
  credits: `Usage: daymind-keys credits KEY|PREFIX (--add N | --set N) [--refill monthly:N|daily:N|none] [--json]

Changes a key's prepaid credits and prints the new balance. Give --add or --set, or only --refill.

  --add N        add N credits; a negative N (--add -500) takes some back, never below 0
  --set N        set the balance to N (a whole number of 0 or more)
  --refill ...   monthly:N or daily:N restores the balance to N at the start of each UTC month
                 or day (a key that is not prepaid yet starts at N); none stops refilling
`,
  plans: `Usage: daymind-keys plans [--json]

The plans in force: those of the JSON file named by DAYMIND_PLANS_FILE (from --env-file or the
environment). For each: its limits (name limit/window, and how long a key that exceeds one is
blocked), its monthly quota per key (or none) and its description.
`,
  export: `Usage: daymind-keys export [--format csv|json|beancount] [--month YYYY-MM] [--owner OWNER] [--price "0.001 USD"] [--ledger-dir DIR] [--json]

Per-owner usage totals from the usage ledger (ledger-YYYY-MM.jsonl files), for invoicing: one
row per owner and month, with the amount when --price is given. Beancount output (needs --price)
has one transaction per owner and month, receivable against Income:Api-Usage.

  --format      csv (default), json or beancount
  --month       only this month (UTC); default: every ledger file
  --owner       only this owner
  --price       unit price and currency, e.g. "0.001 USD"
  --ledger-dir  where the ledger is: default DAYMIND_LEDGER_DIR, else the key store's directory
`,
  billing: `Usage: daymind-keys billing [--ledger-dir DIR] [--json]

What the billing outbox holds, read without changing it: usage of billing windows not closed into
reports yet, reports waiting for the billing provider (oldest first, with the age of the oldest),
reports dead-lettered (billing-dead-letter.jsonl, with their reasons) and damaged outbox lines
(and the quarantine file they were moved to). The text lists 20 of each; --json lists all.

  --ledger-dir  where the outbox is: default DAYMIND_LEDGER_DIR, else the key store's directory
`,
  revoke: `Usage: daymind-keys revoke KEY|PREFIX [--json]

Revokes the key: every server on this store refuses it within a second. Revoking a revoked key
changes nothing.
`,
  show: `Usage: daymind-keys show KEY|PREFIX [--json]

One key's record and counters, with its plan, scopes, this UTC month's units against the plan's
monthly quota, and prepaid credits.
`,
  rotate: `Usage: daymind-keys rotate KEY|PREFIX [--grace DURATION] [--json]

Creates a new key with the same owner, limit, expiry and meta, prints it once, and revokes the
old key at once or, with --grace, when the grace period ends (e.g. --grace 24h), so that clients
can switch over.
`,
  usage: `Usage: daymind-keys usage [--owner OWNER] [--json]

Usage totals per owner and per key: all-time usage_count and requests today (UTC day). Usage a
running server counted in the last second may not be written yet.
`,
  report: `Usage: daymind-keys report [--month YYYY-MM] [--owner OWNER] [--html FILE] [--ledger-dir DIR] [--json]
       daymind-keys report --email [--dry-run DIR] [--month YYYY-MM] [--owner OWNER] [--ledger-dir DIR]

One month's usage report: per owner, units in the month (from the usage ledger, equal to
export's quantity), rate-limited requests (from the per-day history, where the store keeps one),
all-time usage and requests today (from the store, equal to usage); the top 10 keys by units;
and units per UTC day. A table on stdout; --json prints the same data as JSON.

  --month       the month (UTC); default: the current month
  --owner       only this owner
  --html FILE   write the report as one self-contained HTML file (no script, no network:
                it opens from a mail attachment), replaced whole or not at all; prints its path
  --ledger-dir  where the ledger is: default DAYMIND_LEDGER_DIR, else the key store's directory
  --email       mail each owner its month (units, requests, each key's quota and credits left,
                units per day as a chart; plain text and HTML, no remote images) at the
                addresses of its keys (create/set --email), through SMTP_URL from SMTP_FROM
  --dry-run DIR with --email: write the messages to DIR as .eml files instead of sending them
`,
  migrate: `Usage: daymind-keys migrate --from FILE --to redis://HOST:PORT [--json]

Copies every key of a JSON key store, with its counters, status and settings, to a Redis key
store (namespace REDIS_PREFIX, default daymind). Keys already in Redis are left as they are, so
running it twice does not count anything twice. Plain keys of older stores keep working: only
their hash is written to Redis. Stop the servers on the file first: usage they count on the file
after a key was copied is not carried over.
`,
};

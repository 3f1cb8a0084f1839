// Start the real Unleash server for shadowcanary's tests and CI, configured from env.
//
//   DATABASE_URL                      postgres://user:pass@host:port/db  (or the pieces:
//   DATABASE_HOST DATABASE_PORT DATABASE_NAME DATABASE_USERNAME DATABASE_PASSWORD)
//   UNLEASH_HOST (127.0.0.1)  UNLEASH_PORT (4242)
//   INIT_ADMIN_API_TOKENS='*:*.secret'   INIT_BACKEND_API_TOKENS='default:development.secret'
//   LOG_LEVEL (warn)
//   UNLEASH_PARENT_PID   exit when this process is gone (a killed test run leaks no server)
//
// Used by shadowcanary/testing/unleash.py (run_unleash). No telemetry, no version check:
// CI can reach only the package registries, and tests must not phone home.

// The `telemetry: false` option alone is ignored by unleash-server (it ORs the option
// with SEND_TELEMETRY, defaulting to true), so the variable must be set before start().
process.env.SEND_TELEMETRY = 'false';
process.env.CHECK_VERSION = 'false';
process.env.LOG_LEVEL ??= 'warn';

const { start } = await import('unleash-server');

const env = process.env;
const db = env.DATABASE_URL
    ? {} // unleash-server parses DATABASE_URL itself
    : {
          host: env.DATABASE_HOST ?? '127.0.0.1',
          port: Number(env.DATABASE_PORT ?? 5432),
          database: env.DATABASE_NAME ?? 'unleash',
          user: env.DATABASE_USERNAME ?? 'postgres',
          password: env.DATABASE_PASSWORD ?? '',
          ssl: false,
      };

const unleash = await start({
    db: { ...db, ssl: false, pool: { min: 0, max: 4 } },
    server: {
        host: env.UNLEASH_HOST ?? '127.0.0.1',
        port: Number(env.UNLEASH_PORT ?? 4242),
        // Graceful shutdown waits for keep-alive clients; tests stop us with SIGTERM
        // and want the port closed promptly.
        gracefulShutdownEnable: false,
    },
    versionCheck: { enable: false },
    telemetry: false,
});

const stop = async (signal) => {
    try {
        await unleash.stop();
    } finally {
        process.exit(signal === 'SIGINT' ? 130 : 0);
    }
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));

const parent = Number(env.UNLEASH_PARENT_PID || 0);
if (parent > 0) {
    setInterval(() => {
        try {
            process.kill(parent, 0); // signal 0: only asks whether the process exists
        } catch {
            stop('SIGTERM');
        }
    }, 1000).unref();
}

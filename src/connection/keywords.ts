/**
 * libpq's connection keywords and the environment variable each falls back to
 * (https://www.postgresql.org/docs/current/libpq-connect.html). Every keyword is accepted where
 * libpq accepts it; the ones rowdoctor cannot act on are listed in IGNORED and said so on stderr.
 */
export const ENV_OF: Record<string, string | null> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  passfile: 'PGPASSFILE',
  service: 'PGSERVICE',
  servicefile: 'PGSERVICEFILE',
  options: 'PGOPTIONS',
  application_name: 'PGAPPNAME',
  fallback_application_name: null,
  connect_timeout: 'PGCONNECT_TIMEOUT',
  client_encoding: 'PGCLIENTENCODING',
  sslmode: 'PGSSLMODE',
  requiressl: 'PGREQUIRESSL',
  sslnegotiation: 'PGSSLNEGOTIATION',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslpassword: null,
  sslrootcert: 'PGSSLROOTCERT',
  ssl_min_protocol_version: 'PGSSLMINPROTOCOLVERSION',
  ssl_max_protocol_version: 'PGSSLMAXPROTOCOLVERSION',
  // Accepted, not acted on (see IGNORED).
  sslsni: 'PGSSLSNI',
  sslcompression: 'PGSSLCOMPRESSION',
  sslcertmode: 'PGSSLCERTMODE',
  sslcrl: 'PGSSLCRL',
  sslcrldir: 'PGSSLCRLDIR',
  requirepeer: 'PGREQUIREPEER',
  require_auth: 'PGREQUIREAUTH',
  channel_binding: 'PGCHANNELBINDING',
  gssencmode: 'PGGSSENCMODE',
  krbsrvname: 'PGKRBSRVNAME',
  gsslib: 'PGGSSLIB',
  gssdelegation: 'PGGSSDELEGATION',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  load_balance_hosts: 'PGLOADBALANCEHOSTS',
  min_protocol_version: 'PGMINPROTOCOLVERSION',
  max_protocol_version: 'PGMAXPROTOCOLVERSION',
  keepalives: null,
  keepalives_idle: null,
  keepalives_interval: null,
  keepalives_count: null,
  tcp_user_timeout: null,
  replication: null,
};

export const KEYWORDS = Object.keys(ENV_OF);

/** Keywords libpq honours that node-postgres gives rowdoctor no way to honour. */
export const IGNORED = new Set([
  'sslsni',
  'sslcompression',
  'sslcertmode',
  'sslcrl',
  'sslcrldir',
  'requirepeer',
  'require_auth',
  'channel_binding',
  'gssencmode',
  'krbsrvname',
  'gsslib',
  'gssdelegation',
  'target_session_attrs',
  'load_balance_hosts',
  'min_protocol_version',
  'max_protocol_version',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'replication',
]);

/** URL spellings node-postgres accepted before; kept so an existing DATABASE_URL keeps working. */
export const LEGACY = new Set(['ssl', 'uselibpqcompat']);

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

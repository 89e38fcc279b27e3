/**
 * SSH connection settings. Field names and defaults follow `@pulumi/command`'s
 * `remote.ConnectionArgs`, so users can paste connection blocks between the two, with one
 * deliberate difference: the host key is checked by default, and skipping the check is an
 * explicit opt-in.
 */
import { z } from "zod";
import { hostKeyProblem } from "./host-key-line";

/** A value Pulumi encrypted in a stack file (`secure: v1:...`); only Pulumi can read it. */
export const encryptedValueSchema = z.object({ secure: z.string().min(1) }).strict();
export type EncryptedValue = z.infer<typeof encryptedValueSchema>;

const secretString = z.union([z.string().min(1), encryptedValueSchema]);

const hostnameOrAddress = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$|^[0-9A-Fa-f:.]+$/, "must be a hostname or an IP address");

/** A POSIX login name; also keeps the name safe to place in `sudo -u` or a path. */
const userName = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a POSIX user name: lowercase letters, digits, '_' or '-', 1-32 chars");

export { fingerprintPattern } from "./host-key-line";

/** A SHA256 fingerprint, or one public key or known_hosts line read by the parser the transport uses. */
const hostKey = z
  .string()
  .trim()
  .superRefine((v, ctx) => {
    const problem = hostKeyProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });

const connectionFields = {
  host: hostnameOrAddress.optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: userName.optional(),
  password: secretString.optional(),
  privateKey: secretString.optional(),
  privateKeyPassword: secretString.optional(),
  /** A private key file to read instead of `privateKey` (relative paths are from the working directory). */
  privateKeyPath: z.string().min(1).optional(),
  agentSocketPath: z.string().min(1).optional(),
  /** How many dial attempts before giving up; -1 means unlimited. */
  dialErrorLimit: z.number().int().min(-1).optional(),
  /** Seconds per dial attempt; 0 means no limit. */
  perDialTimeout: z.number().int().min(0).optional(),
  /** The expected host key: a SHA256 fingerprint or a known_hosts line. */
  hostKey: hostKey.optional(),
  /** A known_hosts file to check the host key against, instead of `hostKey`; with `trustOnFirstUse`, new hosts are added to it. */
  knownHostsFile: z.string().min(1).optional(),
  /**
   * Trust the key a host presents the first time and record it (in `knownHostsFile` when given,
   * else in the tool's own known_hosts file); a different key later is refused. Explicit opt-in.
   */
  trustOnFirstUse: z.boolean().optional(),
  /** Also offer SHA-1 (ssh-rsa signatures, hmac-sha1, SHA-1 key exchange) and CBC ciphers, for old hosts only. */
  legacyAlgorithms: z.boolean().optional(),
  /** Run commands through `sudo -n` (the default when `user` is not root). */
  sudo: z.boolean().optional(),
};

export const proxyConnectionSchema = z.object(connectionFields).strict();
export const connectionSchema = z.object({ ...connectionFields, proxy: proxyConnectionSchema.optional() }).strict();

export type ProxyConnectionInput = z.infer<typeof proxyConnectionSchema>;
export type ConnectionInput = z.infer<typeof connectionSchema>;

/** A connection after defaults are merged in; `host` is always known. */
export interface Connection extends Omit<ConnectionInput, "host" | "port" | "user" | "proxy"> {
  host: string;
  port: number;
  user: string;
  dialErrorLimit: number;
  perDialTimeout: number;
  sudo: boolean;
  proxy?: Connection;
}

export const connectionDefaults = { port: 22, user: "root", dialErrorLimit: 10, perDialTimeout: 15 } as const;

/**
 * A host's own fields over the shared ones. How the host key is checked is one choice: a
 * host that makes it (hostKey, knownHostsFile or trustOnFirstUse) takes none of the shared ones.
 */
export function mergeConnections(own: ConnectionInput | undefined, shared: ConnectionInput | undefined): ConnectionInput {
  const ownChoosesKey = own !== undefined && (own.hostKey !== undefined || own.knownHostsFile !== undefined || own.trustOnFirstUse !== undefined);
  const base: ConnectionInput = { ...(shared ?? {}) };
  if (ownChoosesKey) {
    delete base.hostKey;
    delete base.knownHostsFile;
    delete base.trustOnFirstUse;
  }
  return { ...base, ...(own ?? {}) };
}

/**
 * Merges a host's own connection over the cluster's shared defaults, then the built-in
 * defaults. `fallbackHost` is the host's DIP or RIP, used when no host is given.
 */
export function resolveConnection(own: ConnectionInput | undefined, shared: ConnectionInput | undefined, fallbackHost: string): Connection {
  const merged = mergeConnections(own, shared);
  const user = merged.user ?? connectionDefaults.user;
  const { proxy, ...rest } = merged;
  const resolved: Connection = {
    ...rest,
    host: own?.host ?? fallbackHost,
    port: merged.port ?? connectionDefaults.port,
    user,
    dialErrorLimit: merged.dialErrorLimit ?? connectionDefaults.dialErrorLimit,
    perDialTimeout: merged.perDialTimeout ?? connectionDefaults.perDialTimeout,
    sudo: merged.sudo ?? user !== "root",
  };
  if (proxy) {
    if (!proxy.host) throw new Error("proxy.host is required");
    resolved.proxy = resolveConnection(proxy, undefined, proxy.host);
  }
  return resolved;
}

/**
 * The cluster spec: one zod schema is the single source of truth for the types users write,
 * for validation, and for the error paths they see. Field-level rules live here; rules that
 * relate fields across the spec live in `rules.ts`, and `cluster.ts` joins the two with
 * `superRefine` so one parse reports every problem.
 */
import { z } from "zod";
import { connectionSchema } from "./connection";
import type { ClusterAddresses } from "./addresses";
import { parseAddress, parseCidr } from "./ip";

/** Every IPVS scheduler the Linux kernel ships (net/netfilter/ipvs/ip_vs_*.c). */
export const schedulers = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"] as const;
export type Scheduler = (typeof schedulers)[number];

/** Scheduler flags ipvsadm accepts with `-b`; the sh- and mh- ones only mean something to their scheduler. */
export const schedulerFlags = ["flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"] as const;
export type SchedulerFlag = (typeof schedulerFlags)[number];

/** Longest persistence ipvsadm accepts: 31 days. */
export const maxPersistenceSeconds = 86400 * 31;

export const resourceName = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit");

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace; we also refuse shell metacharacters. */
export const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/, "must be a Linux interface name: 1-15 characters from letters, digits, '_', '.', '-' (no '/', whitespace or shell metacharacters)")
  .refine((v) => v !== "." && v !== "..", { message: "must not be '.' or '..'" });

export const ipAddress = z.string().refine((v) => parseAddress(v) !== undefined, {
  message: "must be an IPv4 or IPv6 address without a prefix",
});

export const ipCidr = z.string().superRefine((v, ctx) => {
  if (parseCidr(v) !== undefined) return;
  const prefix = /\/(0\d+)$/.exec(v)?.[1];
  ctx.addIssue({
    code: "custom",
    message:
      prefix !== undefined
        ? `has the prefix length "${prefix}" with a leading zero, which iproute2 reads as octal: write ${Number(prefix)}`
        : "must be an address with a prefix length, e.g. 198.51.100.2/24",
  });
});

export const port = z.number().int().min(1).max(65535);

/**
 * A director's IPVS settings, always written: their defaults are the values an LVS-DR director
 * wants (see the spec reference). The kernel's own defaults are not safe for the tool's drain:
 * with expire_nodest_conn at 0, a client port reused from a removed real server's old connection
 * is sent to that server and lost (the lab saw 1 in 100 requests fail for seconds after a removal).
 */
export const ipvsSettingsSchema = z
  .object({
    /** Drop a connection at once when its real server is removed, instead of blackholing it. */
    expireNodestConn: z.boolean().default(true),
    /** Expire persistence templates of a quiesced (weight 0) real server, so a drain ends. */
    expireQuiescentTemplate: z.boolean().default(true),
    /** 0: reuse a connection entry for a new connection from the same port; 1: reschedule it (kernel default). */
    connReuseMode: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    /** Keep netfilter conntrack entries for IPVS traffic: only with conntrack-based firewall rules on the director. */
    conntrack: z.boolean().default(false),
    /** Seconds an idle established TCP connection, a closing one, and a UDP flow stay in the table. */
    timeouts: z
      .object({
        tcp: z.number().int().min(1).max(2147483).default(900),
        tcpFin: z.number().int().min(1).max(2147483).default(120),
        udp: z.number().int().min(1).max(2147483).default(300),
      })
      .strict()
      .default({ tcp: 900, tcpFin: 120, udp: 300 }),
  })
  .strict();

export const directorSchema = z
  .object({
    name: resourceName,
    /** The NIC that holds the DIP; the VIPs are added to it too. */
    interface: interfaceName,
    /** The director's own address with its prefix, e.g. 198.51.100.2/24. */
    dip: ipCidr,
    /** Dual stack: the director's IPv6 address with its prefix on the same NIC, beside an IPv4 `dip`, for IPv6 services. */
    dip6: ipCidr.optional(),
    connection: connectionSchema.optional(),
    ipvs: ipvsSettingsSchema.prefault({}),
  })
  .strict();

export const realServerSchema = z
  .object({
    name: resourceName,
    rip: ipAddress,
    /** Dual stack: the real server's IPv6 address on the same NIC, beside an IPv4 `rip`, for IPv6 services. */
    rip6: ipAddress.optional(),
    /** The NIC facing the director; ARP suppression is set on it too. */
    interface: interfaceName.default("eth0"),
    /** The real server's default gateway, if you want it checked: it must not be the DIP. */
    gateway: ipAddress.optional(),
    /** Dual stack: the IPv6 gateway, checked like `gateway` against `rip6`. */
    gateway6: ipAddress.optional(),
    connection: connectionSchema.optional(),
  })
  .strict();

export const destinationSchema = z
  .object({
    /** The name of a real server in `realServers`. */
    name: resourceName,
    /** 0 quiesces: no new connections, existing ones continue. */
    weight: z.number().int().min(0).max(65535).default(1),
    /** LVS-DR cannot map ports: if given it must equal the service port. */
    port: port.optional(),
    /** Stop sending new connections above this many (0 = no limit). */
    upperThreshold: z.number().int().min(0).max(2147483647).default(0),
    /** Resume below this many, after the upper threshold was hit (0 = not set). */
    lowerThreshold: z.number().int().min(0).max(2147483647).default(0),
  })
  .strict();

export const persistenceSchema = z
  .object({
    /** Seconds a client sticks to the same real server. */
    timeout: z.number().int().min(1).max(maxPersistenceSeconds),
    /** Clients grouped for persistence: a dotted netmask (IPv4) or a prefix length (IPv6). */
    netmask: z.union([z.string(), z.number().int().min(1).max(128)]).optional(),
  })
  .strict();

/** An absolute path on the director, without whitespace, quotes or shell metacharacters. */
export const absolutePath = z.string().regex(/^\/[A-Za-z0-9_./@%+=:,-]*$/, "must be an absolute path (starting with '/') of letters, digits and _ . / @ % + = : , -");

/** One argument of a check command: keepalived splits its command line on spaces, so none here. */
export const commandArgument = z
  .string()
  .regex(/^[A-Za-z0-9_./@%+=:,{}-]+$/, "must be 1 or more of letters, digits and _ . / @ % + = : , - { } (no spaces, quotes or shell metacharacters)");

/** An HTTP request path: starts with '/', no whitespace, quotes or control characters. */
export const urlPath = z.string().regex(/^\/[\x21\x23-\x26\x28-\x7e]*$/, "must start with '/' and hold no whitespace, quotes or control characters");

export const hostHeader = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/, "must be a host name (letters, digits, '.', '-'), optionally with :port");

/** Fields every kind of health check has. Times are whole seconds, as keepalived reads them. */
const healthCheckCommon = {
  /** Probe this port of the RIP instead of the service port. */
  port: port.optional(),
  /** Seconds between checks of one real server (keepalived's delay_loop). */
  intervalSeconds: z.number().int().min(1, "must be at least 1 second").max(3600).default(5),
  /** Seconds to wait for a connection (or the command) before the try fails. */
  connectTimeoutSeconds: z.number().int().min(1, "must be at least 1 second").max(300).default(3),
  /** Failed tries in a row, after the first, before the real server counts as down. */
  retries: z.number().int().min(0, "must be 0 or more").max(100).default(1),
  /** Seconds between a failed try and the next one. */
  retryDelaySeconds: z.number().int().min(1, "must be at least 1 second").max(3600).default(1),
  /** `quiesce`: weight 0, established connections finish; `remove`: out of the IPVS table. */
  onFailure: z.enum(["quiesce", "remove"]).default("quiesce"),
};

const httpCheckFields = {
  ...healthCheckCommon,
  path: urlPath.default("/"),
  /** Status codes that count as healthy. */
  statusCodes: z
    .array(z.number().int().min(100, "must be an HTTP status code (100-599)").max(599, "must be an HTTP status code (100-599)"))
    .min(1, "give at least one status code")
    .default([200]),
  /** The Host header to send (default: the RIP). */
  host: hostHeader.optional(),
};

export const healthCheckSchema = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("tcp"), ...healthCheckCommon }).strict(),
    z.object({ type: z.literal("http"), ...httpCheckFields }).strict(),
    z.object({ type: z.literal("https"), ...httpCheckFields }).strict(),
    z
      .object({
        type: z.literal("command"),
        ...healthCheckCommon,
        /** The program on the director, run once per real server; exit 0 means healthy. */
        path: absolutePath,
        /** Its arguments; `{rip}` and `{port}` are replaced by the real server's address and the checked port. */
        args: z.array(commandArgument).default([]),
      })
      .strict(),
  ],
  { error: "must be one of the check types tcp, http, https, command" },
);

export const quorumSchema = z
  .object({
    /** Least total weight of healthy real servers for the service to be up. */
    weight: z
      .number()
      .int()
      .min(1)
      .max(65535 * 1024),
    /** Down below `weight - hysteresis`, up again at `weight + hysteresis`. */
    hysteresis: z.number().int().min(0).max(65535).default(0),
  })
  .strict();

export const virtualServiceSchema = z
  .object({
    name: resourceName,
    /** Which director serves it; may be left out when there is one director. */
    director: resourceName.optional(),
    /** A failover group serves it instead: its directors hold the VIP through VRRP. */
    failoverGroup: resourceName.optional(),
    vip: ipAddress,
    protocol: z.enum(["tcp", "udp"]).optional(),
    port: port.optional(),
    /** A firewall mark service instead of protocol and port; the marking rule is yours. */
    fwmark: z.number().int().min(1).max(4294967295).optional(),
    scheduler: z.enum(schedulers).default("wlc"),
    schedulerFlags: z.array(z.enum(schedulerFlags)).default([]),
    persistence: persistenceSchema.optional(),
    /** Required, so a service is never left empty by a forgotten key; `[]` says so on purpose. */
    realServers: z.array(destinationSchema),
    /** Checked by keepalived on the director, which then owns this service's IPVS entries. */
    healthCheck: healthCheckSchema.optional(),
    /** A declared real server that takes the traffic only when no real server is healthy. */
    sorryServer: resourceName.optional(),
    quorum: quorumSchema.optional(),
  })
  .strict();

export const failoverGroupSchema = z
  .object({
    name: resourceName,
    /** VRRP virtual router id, unique among the cluster's groups (and on the segment). */
    virtualRouterId: z.number().int().min(1, "must be 1-255").max(255, "must be 1-255"),
    /** Seconds between VRRP adverts; a backup takes over after about 3 of them. */
    advertIntervalSeconds: z.number().int().min(1).max(255).default(1),
    /** The directors that hold the group's VIPs, and their VRRP priority: the highest holds them. */
    directors: z
      .array(z.object({ name: resourceName, priority: z.number().int().min(1, "must be 1-254").max(254, "must be 1-254") }).strict())
      .min(2, "a failover group needs at least two directors"),
    /** A director of higher priority takes the VIPs back when it returns. */
    preempt: z.boolean().default(true),
    /** VRRP password (PASS authentication, 1-8 characters); a Pulumi secret, never printed. */
    authSecret: z
      .string()
      .regex(/^[\x21-\x7e]{1,8}$/, "must be 1-8 printable characters without spaces (VRRP PASS authentication)")
      .refine((v) => !/["'\\#!]/.test(v), { message: "must not hold quotes, backslash, '#' or '!'" })
      .optional(),
    /** Replicate IPVS connections from the master to the backups, so established ones survive a failover. */
    connectionSync: z.boolean().default(false),
  })
  .strict();

export const drainSchema = z
  .object({
    /** How long to wait for a removed real server's active connections to reach 0. */
    timeoutSeconds: z.number().int().min(0).max(86400).default(300),
    pollSeconds: z.number().int().min(1).max(60).default(2),
  })
  .strict();

export const clusterObjectSchema = z
  .object({
    /** Recorded on each host with what the tool owns there. */
    name: resourceName.default("lvs-dr"),
    /** Connection fields shared by every host (user, key, bastion...); each host's own win. */
    connectionDefaults: connectionSchema.optional(),
    directors: z.array(directorSchema).min(1, "at least one director is required"),
    realServers: z.array(realServerSchema).default([]),
    virtualServices: z.array(virtualServiceSchema).default([]),
    failoverGroups: z.array(failoverGroupSchema).default([]),
    drain: drainSchema.default({ timeoutSeconds: 300, pollSeconds: 2 }),
  })
  .strict();

export type ClusterInput = z.input<typeof clusterObjectSchema>;
/** The spec as validated, defaults filled in: what the user wrote, in its own shape. */
export type ClusterSpec = z.output<typeof clusterObjectSchema>;
/** A validated cluster: its spec, and the addresses in it parsed once (the model's input). */
export type Cluster = ClusterSpec & { readonly addresses: ClusterAddresses };
export type Director = z.output<typeof directorSchema>;
export type RealServer = z.output<typeof realServerSchema>;
export type VirtualService = z.output<typeof virtualServiceSchema>;
export type Destination = z.output<typeof destinationSchema>;
export type Persistence = z.output<typeof persistenceSchema>;
export type HealthCheck = z.output<typeof healthCheckSchema>;
export type FailoverGroup = z.output<typeof failoverGroupSchema>;
export type IpvsSettings = z.output<typeof ipvsSettingsSchema>;

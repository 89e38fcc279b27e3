/**
 * The cluster spec: one zod schema is the single source of truth for the types users write,
 * for validation, and for the error paths they see. Field-level rules live here; rules that
 * relate fields across the spec live in `rules.ts`, and `cluster.ts` joins the two with
 * `superRefine` so one parse reports every problem.
 */
import { z } from "zod";
import { connectionSchema } from "./connection";
import { parseAddress, parseCidr } from "./ip";

/** Every IPVS scheduler the Linux kernel ships (net/netfilter/ipvs/ip_vs_*.c). */
export const schedulers = [
  "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
] as const;
export type Scheduler = (typeof schedulers)[number];

/** Scheduler flags ipvsadm accepts with `-b`; the sh- and mh- ones only mean something to their scheduler. */
export const schedulerFlags = ["flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"] as const;
export type SchedulerFlag = (typeof schedulerFlags)[number];

/** Longest persistence ipvsadm accepts: 31 days. */
export const maxPersistenceSeconds = 86400 * 31;

export const resourceName = z
  .string()
  .regex(
    /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
  );

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace; we also refuse shell metacharacters. */
export const interfaceName = z
  .string()
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/,
    "must be a Linux interface name: 1-15 characters from letters, digits, '_', '.', '-' (no '/', whitespace or shell metacharacters)",
  )
  .refine((v) => v !== "." && v !== "..", { message: "must not be '.' or '..'" });

export const ipAddress = z.string().refine((v) => parseAddress(v) !== undefined, {
  message: "must be an IPv4 or IPv6 address without a prefix",
});

export const ipCidr = z.string().refine((v) => parseCidr(v) !== undefined, {
  message: "must be an address with a prefix length, e.g. 198.51.100.2/24",
});

export const port = z.number().int().min(1).max(65535);

export const directorSchema = z
  .object({
    name: resourceName,
    /** The NIC that holds the DIP; the VIPs are added to it too. */
    interface: interfaceName,
    /** The director's own address with its prefix, e.g. 198.51.100.2/24. */
    dip: ipCidr,
    connection: connectionSchema.optional(),
  })
  .strict();

export const realServerSchema = z
  .object({
    name: resourceName,
    rip: ipAddress,
    /** The NIC facing the director; ARP suppression is set on it too. */
    interface: interfaceName.default("eth0"),
    /** The real server's default gateway, if you want it checked: it must not be the DIP. */
    gateway: ipAddress.optional(),
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

export const virtualServiceSchema = z
  .object({
    name: resourceName,
    /** Which director serves it; may be left out when there is one director. */
    director: resourceName.optional(),
    vip: ipAddress,
    protocol: z.enum(["tcp", "udp"]).optional(),
    port: port.optional(),
    /** A firewall mark service instead of protocol and port; the marking rule is yours. */
    fwmark: z.number().int().min(1).max(4294967295).optional(),
    scheduler: z.enum(schedulers).default("wlc"),
    schedulerFlags: z.array(z.enum(schedulerFlags)).default([]),
    persistence: persistenceSchema.optional(),
    realServers: z.array(destinationSchema).default([]),
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
    drain: drainSchema.default({ timeoutSeconds: 300, pollSeconds: 2 }),
  })
  .strict();

export type ClusterInput = z.input<typeof clusterObjectSchema>;
export type Cluster = z.output<typeof clusterObjectSchema>;
export type Director = z.output<typeof directorSchema>;
export type RealServer = z.output<typeof realServerSchema>;
export type VirtualService = z.output<typeof virtualServiceSchema>;
export type Destination = z.output<typeof destinationSchema>;
export type Persistence = z.output<typeof persistenceSchema>;

/** The ownership record a host keeps of what lvs-dr created there. */
import { z } from "zod";
import type { OwnershipRecord } from "../model/host-state";
import { parseJsonAs } from "./ipvsadm";
import { hostRecord } from "./records";

const ownershipSchema = z
  .object({
    version: z.literal(1),
    cluster: z.string(),
    host: z.string(),
    addresses: z.array(z.string()),
    services: z.array(z.string()),
    destinations: z.array(z.string()),
    sysctls: z.record(z.string(), z.string()),
    files: z.array(z.string()),
    keepalivedServices: z.array(z.string()).optional(),
    vrrpAddresses: z.array(z.string()).optional(),
    ipvsTimeouts: z.object({ tcp: z.number().int(), tcpFin: z.number().int(), udp: z.number().int() }).strict().optional(),
  })
  .strict();

export function parseOwnershipRecord(text: string): OwnershipRecord {
  const record = parseJsonAs("ownership record", text, ownershipSchema);
  // Read back from the host: its sysctl keys get a record without a prototype (see records.ts).
  // zod leaves out a `__proto__` key; no /proc/sys path is named that.
  const sysctls = hostRecord<string>();
  for (const [key, value] of Object.entries(record.sysctls)) sysctls[key] = value;
  return { ...record, sysctls };
}

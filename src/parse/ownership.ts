/** The ownership record a host keeps of what lvs-dr created there. */
import { z } from "zod";
import type { OwnershipRecord } from "../model/host-state";
import { ParseError } from "./ipvsadm";

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
  })
  .strict();

export function parseOwnershipRecord(text: string): OwnershipRecord {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ParseError("ownership record", (err as Error).message);
  }
  const result = ownershipSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ParseError("ownership record", `${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  return result.data;
}

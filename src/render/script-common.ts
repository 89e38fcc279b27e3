/** What the observe, apply and boot scripts share: the PATH they run with, and how an address is added. */
import type { InterfaceAddress } from "../model/host-state";
import { assertAddress, assertInterface, assertUint, quote } from "./shell";

export const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH";

/**
 * Adds a VIP, idempotently. An IPv6 one is added `nodad`: on a director's NIC, duplicate address
 * detection would hold it tentative (unusable, not answered) for a second or more after every
 * apply and boot, and the VIP is one the cluster knows it owns. On `lo` there is no DAD anyway
 * (accept_dad is -1 there).
 */
export function addAddressCommand(a: InterfaceAddress): string {
  const v6 = a.address.includes(":");
  return `ip addr replace ${quote(`${assertAddress(a.address)}/${assertUint(a.prefix, v6 ? 128 : 32)}`)} dev ${quote(assertInterface(a.interface))}${v6 ? " nodad" : ""}`;
}

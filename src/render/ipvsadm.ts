/**
 * ipvsadm arguments for services and destinations, in the form both the command line and
 * `ipvsadm -R` (restore) read. Also used for the persisted rules file.
 */
import type { DestinationState, Forwarding, VirtualServiceState } from "../model/host-state";
import { hostPort } from "../model/keys";
import { assertAddress, assertUint, assertWord, RenderError } from "./shell";

const forwardingSwitch: Record<Forwarding, string> = { dr: "-g", tunnel: "-i", nat: "-m", local: "-g" };

/** `-t 198.51.100.5:80`, `-u [2001:db8::5]:53`, `-f 7` (`-f 7 -6` for IPv6). */
export function serviceSelector(svc: VirtualServiceState): string {
  switch (svc.protocol) {
    case "tcp":
      return `-t ${hostPort(assertAddress(svc.address), assertUint(svc.port, 65535))}`;
    case "udp":
      return `-u ${hostPort(assertAddress(svc.address), assertUint(svc.port, 65535))}`;
    case "fwmark":
      return `-f ${assertUint(svc.fwmark)}${svc.family === 6 ? " -6" : ""}`;
    default: {
      const never: never = svc.protocol;
      throw new RenderError(`unknown protocol ${String(never)}`);
    }
  }
}

const selectorsByKey = new Map<string, string>();

/** Selector from a destination's service key, which is all a destination carries. */
export function serviceSelectorFromKey(key: string): string {
  // Thousands of destinations share a few services: check and render each key once.
  const known = selectorsByKey.get(key);
  if (known !== undefined) return known;
  const selector = renderSelectorFromKey(key);
  if (selectorsByKey.size > 65536) selectorsByKey.clear();
  selectorsByKey.set(key, selector);
  return selector;
}

function renderSelectorFromKey(key: string): string {
  const fw = /^fwmark(6?):(\d+)$/.exec(key);
  if (fw) return `-f ${assertUint(Number(fw[2]))}${fw[1] ? " -6" : ""}`;
  const m = /^(tcp|udp):(?:\[([0-9a-f:]+)\]|([0-9.]+)):(\d+)$/.exec(key);
  if (!m) throw new RenderError(`refusing to render service key "${key}"`);
  const address = assertAddress((m[2] ?? m[3]) as string);
  return `${m[1] === "tcp" ? "-t" : "-u"} ${hostPort(address, assertUint(Number(m[4]), 65535))}`;
}

function serviceOptions(svc: VirtualServiceState): string {
  let out = ` -s ${assertWord(svc.scheduler)}`;
  if (svc.flags.length > 0) out += ` -b ${svc.flags.map(assertWord).join(",")}`;
  if (svc.persistence) {
    out += ` -p ${assertUint(svc.persistence.timeout)}`;
    const mask = svc.persistence.netmask;
    if (svc.family === 4) out += ` -M ${assertAddress(mask)}`;
    else out += ` -M ${assertUint(Number(mask), 128)}`;
  }
  return out;
}

function realServerAddress(dest: DestinationState): string {
  const address = assertAddress(dest.address);
  if (dest.port === 0) return address.includes(":") ? `[${address}]` : address;
  return hostPort(address, assertUint(dest.port, 65535));
}

function destinationOptions(dest: DestinationState, weight = dest.weight): string {
  let out = ` -r ${realServerAddress(dest)} ${forwardingSwitch[dest.forwarding]} -w ${assertUint(weight, 65535)}`;
  if (dest.upperThreshold > 0 || dest.lowerThreshold > 0) {
    out += ` -x ${assertUint(dest.upperThreshold)} -y ${assertUint(dest.lowerThreshold)}`;
  }
  return out;
}

export const ipvsLine = {
  addService: (svc: VirtualServiceState) => `-A ${serviceSelector(svc)}${serviceOptions(svc)}`,
  editService: (svc: VirtualServiceState) => `-E ${serviceSelector(svc)}${serviceOptions(svc)}`,
  removeService: (svc: VirtualServiceState) => `-D ${serviceSelector(svc)}`,
  addDestination: (d: DestinationState) => `-a ${serviceSelectorFromKey(d.service)}${destinationOptions(d)}`,
  editDestination: (d: DestinationState, weight?: number) => `-e ${serviceSelectorFromKey(d.service)}${destinationOptions(d, weight)}`,
  removeDestination: (d: DestinationState) => `-d ${serviceSelectorFromKey(d.service)} -r ${realServerAddress(d)}`,
};

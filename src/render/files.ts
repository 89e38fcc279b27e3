/**
 * The text of every file the tool persists on a host, from the plain data in desired state.
 * These files are what brings a host back to the same state after a reboot.
 */
import type { OwnershipRecord, PersistedFile, RenderedFile } from "../model/host-state";
import { hostPaths } from "../model/paths";
import { ipvsLine } from "./ipvsadm";
import { renderKeepalivedConf } from "./keepalived";
import { addAddressCommand } from "./script-common";
import { assertManagedPath, assertSysctlKey, assertSysctlValue, assertUint, quote } from "./shell";

const header = "# Managed by lvs-dr. Changes here are overwritten; change the cluster spec instead.";

export function renderFile(file: PersistedFile): RenderedFile {
  const path = assertManagedPath(file.path);
  const c = file.content;
  switch (c.kind) {
    case "sysctl-conf":
      return {
        path,
        mode: 0o644,
        content:
          [
            header,
            c.sysctls.some((s) => s.key.startsWith("net/ipv4/vs/"))
              ? "# IPVS settings for an LVS-DR director; loaded by the lvs-dr unit once ip_vs is."
              : "# ARP suppression for an LVS-DR real server: the VIP on lo is never announced.",
            ...c.sysctls.map((s) => `${assertSysctlKey(s.key)} = ${assertSysctlValue(s.value)}`),
          ].join("\n") + "\n",
      };
    case "ipvs-rules":
      return {
        path,
        mode: 0o644,
        content: [...c.services.map(ipvsLine.addService), ...c.destinations.map((d) => ipvsLine.addDestination(d))].join("\n") + (c.services.length ? "\n" : ""),
      };
    case "boot-script": {
      const lines = ["#!/bin/sh", header, "# Restores this host's LVS-DR state at boot.", "set -eu"];
      if (c.sysctlFile) {
        lines.push("# ARP suppression first: a VIP on lo must never be answerable before it.");
        lines.push(`sysctl -q -p ${quote(assertManagedPath(c.sysctlFile))}`);
      }
      if (c.rulesFile) {
        lines.push("modprobe ip_vs 2>/dev/null || :");
        if (c.ipvsSysctlFile) lines.push(`sysctl -q -p ${quote(assertManagedPath(c.ipvsSysctlFile))}`);
        if (c.ipvsTimeouts) lines.push(`ipvsadm --set ${assertUint(c.ipvsTimeouts.tcp)} ${assertUint(c.ipvsTimeouts.tcpFin)} ${assertUint(c.ipvsTimeouts.udp)}`);
        lines.push(`ipvsadm -R < ${quote(assertManagedPath(c.rulesFile))}`);
      }
      for (const a of c.addresses) {
        lines.push(addAddressCommand(a));
      }
      return { path, mode: 0o644, content: lines.join("\n") + "\n" };
    }
    case "systemd-unit":
      return {
        path,
        mode: 0o644,
        content:
          [
            header,
            "[Unit]",
            "Description=LVS-DR addresses, ARP suppression and IPVS table (lvs-dr)",
            "After=network-online.target systemd-sysctl.service",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            // Run by /bin/sh, so the script needs no execute bit (and no chmod when written).
            `ExecStart=/bin/sh ${assertManagedPath(c.scriptPath)}`,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
          ].join("\n") + "\n",
      };
    case "link":
      return { path, linkTarget: assertManagedPath(c.target) };
    case "keepalived-drop-in":
      return {
        path,
        mode: 0o644,
        content:
          [
            header,
            // keepalived deletes its IPVS entries when it stops. Kept, a stop (by hand, or the tool
            // handing a service back to its own table) never leaves a moment without the service:
            // the tool removes what it no longer wants itself. Debian's unit reads DAEMON_ARGS.
            "[Service]",
            "ExecStart=",
            "ExecStart=/usr/sbin/keepalived --dont-fork --dont-release-ipvs $DAEMON_ARGS",
          ].join("\n") + "\n",
      };
    case "keepalived-conf":
      // It may hold the VRRP secret: readable by root only.
      return { path, mode: 0o600, content: renderKeepalivedConf(c.keepalived) };
    default: {
      const never: never = c;
      throw new Error(`unknown file kind ${JSON.stringify(never)}`);
    }
  }
}

export function renderOwnershipFile(record: OwnershipRecord): RenderedFile {
  return { path: hostPaths.ownership, mode: 0o644, content: JSON.stringify(record, null, 2) + "\n" };
}

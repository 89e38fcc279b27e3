/**
 * keepalived.conf from a director's keepalived state. Every value is validated data checked
 * again here by shape, like every command the tool sends: the file is read by a daemon running
 * as root, and `misc_path` runs a program.
 */
import type { HealthCheckState, KeepalivedState, KeepalivedVirtualServer, VrrpInstance } from "../model/host-state";
import { assertAddress, assertInterface, assertUint, assertWord, RenderError } from "./shell";

/** The first line of every keepalived.conf the tool writes: preflight reads the cluster's name in it. */
export function keepalivedHeader(cluster: string): string {
  return `# Managed by lvs-dr for cluster ${assertWord(cluster)}. Changes here are drift; change the cluster spec instead.`;
}

/** The cluster a keepalived.conf was written for, or null if the tool did not write it. */
export function keepalivedConfCluster(content: string): string | null {
  const m = /^# Managed by lvs-dr for cluster ([a-z0-9-]+)\. /.exec(content);
  return m ? m[1]! : null;
}

/** VRRP instance names are the group's name under our prefix. */
export function vrrpInstanceName(group: string): string {
  return `lvsdr_${assertWord(group)}`;
}

const schedulerFlagKeywords: Record<string, string> = {
  "flag-1": "flag-1",
  "flag-2": "flag-2",
  "flag-3": "flag-3",
  "sh-fallback": "sh-fallback",
  "sh-port": "sh-port",
  "mh-fallback": "mh-fallback",
  "mh-port": "mh-port",
};

function assertUrlPath(path: string): string {
  if (!/^\/[\x21\x23-\x26\x28-\x7e]*$/.test(path)) throw new RenderError(`refusing to render URL path "${path}"`);
  return path;
}

function assertHostHeader(host: string): string {
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/.test(host)) throw new RenderError(`refusing to render Host header "${host}"`);
  return host;
}

function assertCommandWord(word: string): string {
  if (!/^[A-Za-z0-9_./@%+=:,{}-]+$/.test(word)) throw new RenderError(`refusing to render command argument "${word}"`);
  return word;
}

function assertSecret(secret: string): string {
  if (!/^[\x21-\x7e]{1,8}$/.test(secret) || /["'\\#!]/.test(secret)) throw new RenderError("refusing to render the VRRP secret: not 1-8 plain printable characters");
  return secret;
}

function checkLines(check: HealthCheckState): string[] {
  const timing = [`retry ${assertUint(check.retries, 100)}`, `delay_before_retry ${assertUint(check.retryDelaySeconds)}`, `delay_loop ${assertUint(check.intervalSeconds)}`];
  switch (check.type) {
    case "tcp":
      return [
        "TCP_CHECK {",
        `  connect_port ${assertUint(check.port, 65535)}`,
        `  connect_timeout ${assertUint(check.connectTimeoutSeconds)}`,
        ...timing.map((l) => `  ${l}`),
        "}",
      ];
    case "http":
    case "https": {
      const codes = check.statusCodes.map((c) => assertUint(c, 599)).join(" ");
      return [
        `${check.type === "http" ? "HTTP_GET" : "SSL_GET"} {`,
        `  url {`,
        `    path ${assertUrlPath(check.path ?? "/")}`,
        `    status_code ${codes}`,
        `  }`,
        ...(check.host !== null ? [`  virtualhost ${assertHostHeader(check.host)}`] : []),
        `  connect_port ${assertUint(check.port, 65535)}`,
        `  connect_timeout ${assertUint(check.connectTimeoutSeconds)}`,
        ...timing.map((l) => `  ${l}`),
        "}",
      ];
    }
    case "command": {
      // keepalived splits the quoted command line on spaces: no word holds one (validated).
      const words = (check.command ?? []).map(assertCommandWord);
      if (!words[0]?.startsWith("/")) throw new RenderError("refusing to render a check command that is not an absolute path");
      return ["MISC_CHECK {", `  misc_path "${words.join(" ")}"`, `  misc_timeout ${assertUint(check.connectTimeoutSeconds)}`, ...timing.map((l) => `  ${l}`), "}"];
    }
    default: {
      const never: never = check.type;
      throw new RenderError(`unknown check type ${String(never)}`);
    }
  }
}

function virtualServerLines(vs: KeepalivedVirtualServer): string[] {
  const svc = vs.service;
  const head = svc.protocol === "fwmark" ? `virtual_server fwmark ${assertUint(svc.fwmark)} {` : `virtual_server ${assertAddress(svc.address)} ${assertUint(svc.port, 65535)} {`;
  const body: string[] = [`lb_algo ${assertWord(svc.scheduler)}`, "lb_kind DR"];
  if (svc.protocol !== "fwmark") body.push(`protocol ${svc.protocol === "udp" ? "UDP" : "TCP"}`);
  for (const flag of svc.flags) {
    const keyword = schedulerFlagKeywords[flag];
    if (!keyword) throw new RenderError(`unknown scheduler flag ${flag}`);
    body.push(keyword);
  }
  if (svc.persistence) {
    body.push(`persistence_timeout ${assertUint(svc.persistence.timeout)}`);
    body.push(`persistence_granularity ${svc.family === 4 ? assertAddress(svc.persistence.netmask) : assertUint(Number(svc.persistence.netmask), 128)}`);
  }
  const checked = Object.keys(vs.checks).length > 0;
  // A real server takes new connections only once its first check passed.
  if (checked) body.push("alpha");
  if (vs.quorum) body.push(`quorum ${assertUint(vs.quorum.weight)}`, `hysteresis ${assertUint(vs.quorum.hysteresis)}`);
  if (vs.sorryServer) {
    body.push(`sorry_server ${assertAddress(vs.sorryServer.address)} ${assertUint(vs.sorryServer.port, 65535)}`);
  }
  for (const d of vs.destinations) {
    const rs = [`weight ${assertUint(d.weight, 65535)}`];
    if (d.upperThreshold > 0) rs.push(`uthreshold ${assertUint(d.upperThreshold)}`);
    if (d.lowerThreshold > 0) rs.push(`lthreshold ${assertUint(d.lowerThreshold)}`);
    if (vs.onFailure === "quiesce") rs.push("inhibit_on_failure");
    const check = vs.checks[d.address];
    if (check) rs.push(...checkLines(check));
    body.push(`real_server ${assertAddress(d.address)} ${assertUint(d.port, 65535)} {`, ...rs.map((l) => `  ${l}`), "}");
  }
  return [head, ...body.map((l) => `  ${l}`), "}"];
}

function vrrpLines(vrrp: VrrpInstance): string[] {
  const body = [
    // Every director starts as backup: the highest priority wins the election, none claims the VIPs blind.
    "state BACKUP",
    `interface ${assertInterface(vrrp.interface)}`,
    `virtual_router_id ${assertUint(vrrp.virtualRouterId, 255)}`,
    `priority ${assertUint(vrrp.priority, 254)}`,
    `advert_int ${assertUint(vrrp.advertIntervalSeconds, 255)}`,
  ];
  if (!vrrp.preempt) body.push("nopreempt");
  if (vrrp.authSecret !== null) body.push("authentication {", "  auth_type PASS", `  auth_pass ${assertSecret(vrrp.authSecret)}`, "}");
  body.push("virtual_ipaddress {", ...vrrp.vips.map((v) => `  ${assertAddress(v.address)}/${assertUint(v.prefix, 128)} dev ${assertInterface(v.interface)}`), "}");
  return [`vrrp_instance ${vrrpInstanceName(vrrp.group)} {`, ...body.map((l) => `  ${l}`), "}"];
}

export function renderKeepalivedConf(state: KeepalivedState): string {
  const global = [`router_id ${assertWord(state.host)}`];
  if (state.vrrp?.connectionSync) {
    // The master's daemon sends, the backups' receive; the sync id is the router id.
    global.push(`lvs_sync_daemon ${assertInterface(state.vrrp.interface)} ${vrrpInstanceName(state.vrrp.group)} id ${assertUint(state.vrrp.virtualRouterId, 255)}`);
  }
  const lines = [keepalivedHeader(state.cluster), "global_defs {", ...global.map((l) => `  ${l}`), "}"];
  if (state.vrrp) lines.push("", ...vrrpLines(state.vrrp));
  for (const vs of state.virtualServers) lines.push("", ...virtualServerLines(vs));
  return lines.join("\n") + "\n";
}
